import { fileURLToPath } from 'node:url';
import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import type { ITableV2 } from 'aws-cdk-lib/aws-dynamodb';
import { PolicyStatement, Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import {
  Architecture,
  type FunctionUrl,
  FunctionUrlAuthType,
  InvokeMode,
  LoggingFormat,
  Runtime,
} from 'aws-cdk-lib/aws-lambda';
import { type BundlingOptions, NodejsFunction, OutputFormat } from 'aws-cdk-lib/aws-lambda-nodejs';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { ISecret } from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import { checkSettings } from '../../lambda/core/config/settings.js';

/** Exactly the DynamoDB actions the key-state store uses. */
export const STATE_TABLE_ACTIONS = [
  'dynamodb:GetItem',
  'dynamodb:UpdateItem',
  'dynamodb:Query',
  'dynamodb:BatchGetItem',
] as const;

/** What a deployer chooses about the function (the stack takes the same, as context). */
export interface ProxyFunctionOptions {
  /** The proxy mostly waits on Gemini; memory buys little but is billed per second. @default 512 */
  readonly memorySize?: number;
  /** Long enough for long streams. @default Duration.minutes(10) */
  readonly timeout?: Duration;
  /**
   * A cost guard: at most this many concurrent instances; 0 reserves none (use the account's pool, e.g.
   * on new accounts whose concurrency quota is 10 and can't spare a reservation). @default 50
   */
  readonly reservedConcurrency?: number;
  /** @default RetentionDays.ONE_MONTH */
  readonly logRetention?: RetentionDays;
  /** How long a fetched secret is used before it is read again. @default Duration.seconds(60) */
  readonly secretCacheAge?: Duration;
  /** @default 'info' */
  readonly logLevel?: string;
  /** Proxy settings (`upstream`, `policy`, `state` sections of the config), passed as JSON. */
  readonly settings?: Record<string, unknown>;
  /** CloudWatch namespace of the request metrics. @default 'GeminiProxy' */
  readonly metricsNamespace?: string;
}

export interface ProxyFunctionProps extends ProxyFunctionOptions {
  readonly table: ITableV2;
  readonly keysSecret: ISecret;
  readonly tokensSecret: ISecret;
}

const ENTRY = fileURLToPath(new URL('../../lambda/proxy/handler.ts', import.meta.url));
const LAMBDA_CREDENTIALS = fileURLToPath(
  new URL('../../lambda/proxy/lambda-credentials.ts', import.meta.url),
);

/** How both functions are bundled: ESM for Node 24, minified, source maps, the AWS SDK inside. */
export const LAMBDA_BUNDLING: BundlingOptions = {
  format: OutputFormat.ESM,
  target: 'node24',
  minify: true,
  sourceMap: true,
  // Bundle the AWS SDK too: tree-shaken, it loads faster than the runtime's full copy.
  externalModules: [],
  mainFields: ['module', 'main'],
  // Lambda hands the role's credentials over in the environment: skip the SDK's full default chain.
  esbuildArgs: { '--alias:@aws-sdk/credential-provider-node': LAMBDA_CREDENTIALS },
};

/**
 * The proxy Lambda (Node.js 24, arm64, ESM, minified, SDK bundled) behind a function URL that streams
 * (`RESPONSE_STREAM`). Auth is NONE: OpenAI clients send a bearer token and can't sign requests with
 * SigV4, so the proxy's own client tokens are the gate.
 */
export class ProxyFunction extends Construct {
  public readonly fn: NodejsFunction;
  public readonly url: FunctionUrl;
  public readonly logGroup: LogGroup;
  /** The settings the function runs with, as JSON (the health check gets the same). */
  public readonly settingsJson: string;

  constructor(scope: Construct, id: string, props: ProxyFunctionProps) {
    super(scope, id);
    const reserved = props.reservedConcurrency ?? 50;
    if (!Number.isInteger(reserved) || reserved < 0)
      throw new Error('reservedConcurrency: expected 0 or more');
    const timeout = props.timeout ?? Duration.minutes(10);
    if (timeout.toSeconds() < 60 || timeout.toSeconds() > 900)
      throw new Error('timeout: expected 60 s to 15 min');
    if (props.memorySize !== undefined && (!Number.isInteger(props.memorySize) || props.memorySize < 128)) {
      throw new Error('memorySize: expected a whole number of MB, at least 128');
    }
    // The same rules the function applies at start-up, so a bad setting fails here, not in production.
    const checked = checkSettings(props.settings ?? {});
    const upstream = (checked.upstream ?? {}) as Record<string, unknown>;
    const settings = {
      ...checked,
      // Streams may run as long as the function does (the handler stops them just before its end).
      upstream: { request_timeout_ms: timeout.toMilliseconds(), ...upstream },
    };
    this.settingsJson = JSON.stringify(settings);

    this.logGroup = new LogGroup(this, 'Logs', {
      retention: props.logRetention ?? RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    // Its own role: logs to its own log group only (no AWSLambdaBasicExecutionRole's `*` resources).
    const role = new Role(this, 'Role', { assumedBy: new ServicePrincipal('lambda.amazonaws.com') });
    this.logGroup.grantWrite(role);
    this.fn = new NodejsFunction(this, 'Function', {
      role,
      entry: ENTRY,
      handler: 'handler',
      runtime: Runtime.NODEJS_24_X,
      architecture: Architecture.ARM_64,
      memorySize: props.memorySize ?? 512,
      timeout,
      reservedConcurrentExecutions: reserved === 0 ? undefined : reserved,
      logGroup: this.logGroup,
      loggingFormat: LoggingFormat.TEXT,
      environment: {
        TABLE_NAME: props.table.tableName,
        KEYS_SECRET_ID: props.keysSecret.secretArn,
        TOKENS_SECRET_ID: props.tokensSecret.secretArn,
        SECRET_CACHE_MS: String((props.secretCacheAge ?? Duration.seconds(60)).toMilliseconds()),
        LOG_LEVEL: props.logLevel ?? 'info',
        PROXY_SETTINGS: this.settingsJson,
        METRICS_NAMESPACE: props.metricsNamespace ?? 'GeminiProxy',
        NODE_OPTIONS: '--enable-source-maps',
      },
      bundling: LAMBDA_BUNDLING,
    });
    this.fn.addToRolePolicy(
      new PolicyStatement({ actions: [...STATE_TABLE_ACTIONS], resources: [props.table.tableArn] }),
    );
    this.fn.addToRolePolicy(
      new PolicyStatement({
        actions: ['secretsmanager:GetSecretValue'],
        resources: [props.keysSecret.secretArn, props.tokensSecret.secretArn],
      }),
    );
    this.url = this.fn.addFunctionUrl({
      authType: FunctionUrlAuthType.NONE,
      invokeMode: InvokeMode.RESPONSE_STREAM,
    });
  }
}
