import { Duration } from 'aws-cdk-lib';
import type { ITableV2 } from 'aws-cdk-lib/aws-dynamodb';
import { type FunctionUrl, FunctionUrlAuthType, InvokeMode } from 'aws-cdk-lib/aws-lambda';
import type { ISecret } from 'aws-cdk-lib/aws-secretsmanager';
import type { Construct } from 'constructs';
import { checkSettings, type ProxySettings } from '../../lambda/core/config/settings.js';
import {
  DEFAULT_METRICS_NAMESPACE,
  GatewayFunction,
  type GatewayFunctionOptions,
} from './gateway-function.js';

/** Exactly the DynamoDB actions the key-state store uses. */
export const STATE_TABLE_ACTIONS = [
  'dynamodb:GetItem',
  'dynamodb:UpdateItem',
  'dynamodb:Query',
  'dynamodb:BatchGetItem',
] as const;

/** What a deployer chooses about the function (the stack takes the same, as context). */
export interface ProxyFunctionOptions extends GatewayFunctionOptions {
  /** The proxy mostly waits on Gemini; memory buys little but is billed per second. @default 512 */
  readonly memorySize?: number;
  /** Long enough for long streams; 60 s to 15 min. @default Duration.minutes(10) */
  readonly timeout?: Duration;
  /**
   * A cost guard: at most this many concurrent instances; 0 reserves none (use the account's pool, e.g.
   * on new accounts whose concurrency quota is 10 and can't spare a reservation). @default 50
   */
  readonly reservedConcurrency?: number;
  /** How long a fetched secret is used before it is read again. @default Duration.seconds(60) */
  readonly secretCacheAge?: Duration;
  /**
   * Proxy settings: the config's `upstream`, `policy` and `state` sections (snake_case, as in the config
   * file), checked at synth by the rules the function applies; passed as JSON. `upstream.request_timeout_ms`
   * defaults to `timeout`. @default {} (the config's defaults)
   */
  readonly settings?: ProxySettings;
  /** CloudWatch namespace of the request metrics. @default 'GeminiProxy' */
  readonly metricsNamespace?: string;
}

export interface ProxyFunctionProps extends ProxyFunctionOptions {
  readonly table: ITableV2;
  readonly keysSecret: ISecret;
  readonly tokensSecret: ISecret;
}

/**
 * The proxy Lambda (a {@link GatewayFunction}) behind a function URL that streams (`RESPONSE_STREAM`).
 * Auth is NONE: OpenAI clients send a bearer token and can't sign requests with SigV4, so the proxy's own
 * client tokens are the gate.
 */
export class ProxyFunction extends GatewayFunction {
  public readonly url: FunctionUrl;
  /** The settings the function runs with, as JSON (the health check gets the same). */
  public readonly settingsJson: string;

  constructor(scope: Construct, id: string, props: ProxyFunctionProps) {
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
    const settingsJson = JSON.stringify({
      ...checked,
      // Streams may run as long as the function does (the handler stops them just before its end).
      upstream: { request_timeout_ms: timeout.toMilliseconds(), ...checked.upstream },
    });
    super(scope, id, {
      entry: 'proxy/handler.ts',
      memorySize: props.memorySize ?? 512,
      timeout,
      reservedConcurrentExecutions: reserved === 0 ? undefined : reserved,
      table: props.table,
      tableActions: STATE_TABLE_ACTIONS,
      keysSecret: props.keysSecret,
      otherSecrets: [props.tokensSecret],
      settingsJson,
      metricsNamespace: props.metricsNamespace ?? DEFAULT_METRICS_NAMESPACE,
      logRetention: props.logRetention,
      logLevel: props.logLevel,
      environment: {
        TOKENS_SECRET_ID: props.tokensSecret.secretArn,
        SECRET_CACHE_MS: String((props.secretCacheAge ?? Duration.seconds(60)).toMilliseconds()),
      },
    });
    this.settingsJson = settingsJson;
    this.url = this.fn.addFunctionUrl({
      authType: FunctionUrlAuthType.NONE,
      invokeMode: InvokeMode.RESPONSE_STREAM,
    });
  }
}
