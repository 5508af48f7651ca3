import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { ConfigError, parseStateConfig } from '../core/config/parse.js';
import { checkSettings, type ProxySettings } from '../core/config/settings.js';
import type { KeyStateStore } from '../core/key-state/port.js';
import type { LogFields, Logger } from '../core/logger.js';
import { JsonLogger, parseLogLevel } from './logger.js';
import { SecretCache } from './secret-cache.js';
import { createStateStore } from './state/create-state-store.js';
import { NodeUpstreamClient } from './upstream-http.js';

/** What both Lambda functions read from their environment, and build from it, the same way. */

/** The environment variables both functions read; each function's own list adds to these. */
export type SharedFunctionEnv = Partial<
  Record<'TABLE_NAME' | 'KEYS_SECRET_ID' | 'LOG_LEVEL' | 'PROXY_SETTINGS' | 'METRICS_NAMESPACE', string>
>;

/** A variable the stack always sets; a clear error names it when it isn't. */
export function required<K extends string>(env: Partial<Record<K, string>>, name: K): string {
  const value = env[name];
  if (value === undefined || value === '') throw new ConfigError(`${name}: not set`);
  return value;
}

/** PROXY_SETTINGS: JSON with the config's upstream/policy/state sections, checked by the config's rules. */
function parseSettings(text: string | undefined): ProxySettings {
  if (text === undefined || text === '') return {};
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new ConfigError('PROXY_SETTINGS: not valid JSON');
  }
  return checkSettings(value);
}

/** The `state` section on Lambda: the settings' tuning, always the stack's DynamoDB table. */
export function lambdaState(settings: ProxySettings, table: string): Record<string, unknown> {
  return { ...settings.state, store: 'dynamodb', table };
}

/** Secrets Manager with bounded calls (the handler's timeout must throw, not just warn). */
function secretsClient(requestTimeoutMs: number): SecretsManagerClient {
  return new SecretsManagerClient({
    maxAttempts: 2,
    requestHandler: {
      connectionTimeout: 2000,
      requestTimeout: requestTimeoutMs,
      throwOnRequestTimeout: true,
    },
  });
}

export interface LambdaInstanceOptions {
  /** How long one Secrets Manager call may take. */
  readonly secretTimeoutMs: number;
  /** How long a fetched secret is used before it is read again (0: read on every use). */
  readonly secretMaxAgeMs: number;
  /** Fields on every log line. @default none */
  readonly logFields?: LogFields;
  /** @default a JSON logger on stdout at LOG_LEVEL */
  readonly logger?: Logger | undefined;
  /** @default a client bounded by `secretTimeoutMs` */
  readonly secrets?: SecretsManagerClient | undefined;
  /** @default the DynamoDB store on TABLE_NAME, tuned by the settings' `state` section */
  readonly store?: KeyStateStore | undefined;
}

/**
 * What one instance of either function builds from the shared environment and keeps between invocations;
 * each function's runtime adds its own. Throws a {@link ConfigError} naming a variable that is missing or bad.
 */
export class LambdaInstance {
  readonly logger: Logger;
  /** PROXY_SETTINGS, checked. */
  protected readonly settings: ProxySettings;
  protected readonly table: string;
  protected readonly store: Promise<KeyStateStore>;
  protected readonly upstream = new NodeUpstreamClient();
  /** The keys secret (`{"groups":[…]}`, the config file's `groups`). */
  protected readonly keys: SecretCache;
  protected readonly metricsNamespace: string;
  /** Another secret, read with the same client and cache age as the keys. */
  protected readonly secret: (secretId: string) => SecretCache;

  constructor(env: SharedFunctionEnv, options: LambdaInstanceOptions) {
    const logger =
      options.logger ?? new JsonLogger(parseLogLevel(env.LOG_LEVEL), undefined, options.logFields);
    this.logger = logger;
    this.table = required(env, 'TABLE_NAME');
    this.metricsNamespace = required(env, 'METRICS_NAMESPACE');
    this.settings = parseSettings(env.PROXY_SETTINGS);
    const client = options.secrets ?? secretsClient(options.secretTimeoutMs);
    this.secret = (secretId) =>
      new SecretCache({ client, secretId, maxAgeMs: options.secretMaxAgeMs, logger });
    this.keys = this.secret(required(env, 'KEYS_SECRET_ID'));
    // The store's settings come from the stack, not the secrets: one store for the instance's life.
    this.store = Promise.resolve(
      options.store ?? createStateStore(parseStateConfig(lambdaState(this.settings, this.table)), logger),
    );
  }
}
