/**
 * What an edit must leave behind, checked with the proxy's own rules before anything is written. A refusal
 * names fields, never values (the `ConfigError` messages of `parseConfig`).
 */
import { configFromText, type Env } from '../adapters/config-loader.js';
import { ConfigError, parseConfig } from '../core/config/parse.js';
import { keysSecretSchema, tokensSecretSchema } from '../core/config/secrets.js';
import { CliError } from './io.js';

function refuse(where: string, err: unknown): never {
  if (err instanceof ConfigError)
    throw new CliError(`the edit would leave ${where} invalid, nothing written: ${err.message}`);
  throw err;
}

/**
 * A whole local config file, as `npm start` reads it: with the environment's overrides (`CLIENT_TOKENS`,
 * `HOST`, …), so that an edit the server would reject is refused, and one it would take is not.
 */
export function validateConfigFile(path: string, env: Env = {}): (value: unknown) => void {
  return (value) => {
    try {
      // JSON is YAML: the edited document, read back the way the server reads its file.
      configFromText(JSON.stringify(value ?? {}), path, env);
    } catch (err) {
      refuse(path, err);
    }
  };
}

/** The keys secret: `{"groups":[…]}`, each group by the config's rules (names unique). */
export function validateKeysSecret(value: unknown): void {
  if (!keysSecretSchema.safeParse(value).success)
    throw new CliError('the edit would leave the keys secret without {"groups":[…]}, nothing written');
  const { groups } = value as { groups: unknown[] };
  // The groups alone: this placeholder server section only spares the check of client tokens.
  try {
    parseConfig({ groups, server: { allow_unauthenticated: true } });
  } catch (err) {
    refuse('the keys secret', err);
  }
}

/** The tokens secret: `{"tokens":[{"sha256":…}]}`, each entry by the config's rules (an empty list is allowed). */
export function validateTokensSecret(value: unknown): void {
  if (!tokensSecretSchema.safeParse(value).success)
    throw new CliError(
      'the edit would leave the tokens secret without {"tokens":[{"sha256":…}]}, nothing written',
    );
  const { tokens } = value as { tokens: unknown[] };
  if (tokens.length === 0) return;
  // The tokens alone: this placeholder group only spares the check of keys.
  try {
    parseConfig({ client_tokens: tokens, groups: [{ name: 'g', api_keys: ['placeholder'] }] });
  } catch (err) {
    refuse('the tokens secret', err);
  }
}
