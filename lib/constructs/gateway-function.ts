import { fileURLToPath } from 'node:url';
import { type Duration, RemovalPolicy } from 'aws-cdk-lib';
import type { ITableV2 } from 'aws-cdk-lib/aws-dynamodb';
import { PolicyStatement, Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { Architecture, LoggingFormat, Runtime } from 'aws-cdk-lib/aws-lambda';
import { type BundlingOptions, NodejsFunction, OutputFormat } from 'aws-cdk-lib/aws-lambda-nodejs';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { ISecret } from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';

/** The CloudWatch namespace both functions' metrics go to unless the deployer names another. */
export const DEFAULT_METRICS_NAMESPACE = 'GeminiProxy';

/** A file of the functions' code, by its path under `lambda/`. */
const lambdaFile = (path: string) => fileURLToPath(new URL(`../../lambda/${path}`, import.meta.url));

/** How every function is bundled: ESM for Node 24, minified, source maps, the AWS SDK inside. */
const BUNDLING: BundlingOptions = {
  format: OutputFormat.ESM,
  target: 'node24',
  minify: true,
  sourceMap: true,
  // Bundle the AWS SDK too: tree-shaken, it loads faster than the runtime's full copy.
  externalModules: [],
  mainFields: ['module', 'main'],
  esbuildArgs: {
    // Lambda hands the role's credentials over in the environment: skip the SDK's full default chain.
    '--alias:@aws-sdk/credential-provider-node': lambdaFile('proxy/lambda-credentials.ts'),
    // Endpoint discovery stays off: its cache without the LRU library it brings.
    '--alias:@aws-sdk/endpoint-cache': lambdaFile('proxy/endpoint-cache.ts'),
  },
};

/** What a deployer chooses the same way for both functions. */
export interface GatewayFunctionOptions {
  /** @default RetentionDays.ONE_MONTH */
  readonly logRetention?: RetentionDays;
  /** @default 'info' */
  readonly logLevel?: string;
}

export interface GatewayFunctionProps extends GatewayFunctionOptions {
  /** The handler module (it exports `handler`), by its path under `lambda/`, e.g. `proxy/handler.ts`. */
  readonly entry: string;
  readonly memorySize: number;
  readonly timeout: Duration;
  /** The key-state table (TABLE_NAME); the role may do `tableActions` on it and nothing else. */
  readonly table: ITableV2;
  readonly tableActions: readonly string[];
  /** The Gemini keys secret (KEYS_SECRET_ID), which both functions read. */
  readonly keysSecret: ISecret;
  /** Further secrets the function reads (and the role may read). @default none */
  readonly otherSecrets?: readonly ISecret[];
  /** The checked `upstream`/`policy`/`state` settings, as JSON (PROXY_SETTINGS). */
  readonly settingsJson: string;
  readonly metricsNamespace: string;
  /** The function's own environment variables, beside the shared ones. @default none */
  readonly environment?: Readonly<Record<string, string>>;
  /** Concurrent instances reserved (and capped). @default none: the account's unreserved pool */
  readonly reservedConcurrentExecutions?: number;
  /** How often Lambda retries a failed asynchronous invocation. @default 2 (Lambda's own) */
  readonly retryAttempts?: number;
}

/**
 * A Lambda function of the gateway: Node.js 24 on arm64, bundled by esbuild, with its own log group and its
 * own role, which may write to that log group, do the given actions on the table and read the given
 * secrets, nothing more (no AWSLambdaBasicExecutionRole and its `*` resources). It gets the environment
 * both functions read (lambda/adapters/lambda-env.ts) and its own variables.
 */
export class GatewayFunction extends Construct {
  public readonly fn: NodejsFunction;
  public readonly role: Role;
  public readonly logGroup: LogGroup;

  constructor(scope: Construct, id: string, props: GatewayFunctionProps) {
    super(scope, id);
    this.logGroup = new LogGroup(this, 'Logs', {
      retention: props.logRetention ?? RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.role = new Role(this, 'Role', { assumedBy: new ServicePrincipal('lambda.amazonaws.com') });
    this.logGroup.grantWrite(this.role);
    this.fn = new NodejsFunction(this, 'Function', {
      role: this.role,
      entry: lambdaFile(props.entry),
      handler: 'handler',
      runtime: Runtime.NODEJS_24_X,
      architecture: Architecture.ARM_64,
      memorySize: props.memorySize,
      timeout: props.timeout,
      reservedConcurrentExecutions: props.reservedConcurrentExecutions,
      retryAttempts: props.retryAttempts,
      logGroup: this.logGroup,
      loggingFormat: LoggingFormat.TEXT,
      environment: {
        TABLE_NAME: props.table.tableName,
        KEYS_SECRET_ID: props.keysSecret.secretArn,
        LOG_LEVEL: props.logLevel ?? 'info',
        PROXY_SETTINGS: props.settingsJson,
        METRICS_NAMESPACE: props.metricsNamespace,
        ...props.environment,
        NODE_OPTIONS: '--enable-source-maps',
      },
      bundling: BUNDLING,
    });
    this.fn.addToRolePolicy(
      new PolicyStatement({ actions: [...props.tableActions], resources: [props.table.tableArn] }),
    );
    this.fn.addToRolePolicy(
      new PolicyStatement({
        actions: ['secretsmanager:GetSecretValue'],
        resources: [props.keysSecret, ...(props.otherSecrets ?? [])].map((secret) => secret.secretArn),
      }),
    );
  }
}
