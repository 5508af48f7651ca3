import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { ConfigError } from '../core/config/parse.js';
import { checkSettings } from '../core/config/settings.js';

/** What both Lambda functions read from their environment, the same way. */

/** A variable the stack always sets; a clear error names it when it isn't. */
export function required<K extends string>(env: Partial<Record<K, string>>, name: K): string {
  const value = env[name];
  if (value === undefined || value === '') throw new ConfigError(`${name}: not set`);
  return value;
}

/** PROXY_SETTINGS: JSON with the config's upstream/policy/state sections, checked by the config's rules. */
export function parseSettings(text: string | undefined): Record<string, unknown> {
  if (text === undefined || text === '') return {};
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new ConfigError('PROXY_SETTINGS: not valid JSON');
  }
  return checkSettings(value) as Record<string, unknown>;
}

/** The `state` section on Lambda: the settings' tuning, always the stack's DynamoDB table. */
export function lambdaState(settings: Record<string, unknown>, table: string): Record<string, unknown> {
  return { ...(settings.state as object | undefined), store: 'dynamodb', table };
}

/** Secrets Manager with bounded calls (the handler's timeout must throw, not just warn). */
export function secretsClient(requestTimeoutMs: number): SecretsManagerClient {
  return new SecretsManagerClient({
    maxAttempts: 2,
    requestHandler: {
      connectionTimeout: 2000,
      requestTimeout: requestTimeoutMs,
      throwOnRequestTimeout: true,
    },
  });
}
