import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parse, YAMLParseError } from 'yaml';
import { ConfigError, parseConfig } from '../core/config/parse.js';
import type { ProxyConfig } from '../core/config/schema.js';

export type Env = Readonly<Record<string, string | undefined>>;

function splitList(value: string): string[] {
  return value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(
      `CONFIG_PATH: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
    );
  }
}

function parseYaml(text: string, path: string): Record<string, unknown> {
  let raw: unknown;
  try {
    raw = parse(text) ?? {};
  } catch (err) {
    // The parser's own message quotes the offending line, which may hold a key: report position only.
    if (err instanceof YAMLParseError) {
      const pos = err.linePos?.[0];
      const where = pos === undefined ? '' : ` at line ${pos.line}, column ${pos.col}`;
      throw new ConfigError(`${path}: YAML syntax error${where} (${err.code})`);
    }
    throw new ConfigError(`${path}: YAML syntax error`);
  }
  if (!isRecord(raw)) throw new ConfigError(`${path}: expected a YAML mapping at the top level`);
  return raw;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Where a loaded configuration came from: the file and the text read (absent: `GEMINI_API_KEYS`). */
export interface LoadedConfig {
  readonly config: ProxyConfig;
  readonly file: { readonly path: string; readonly text: string } | undefined;
}

/**
 * Loads the proxy configuration: the YAML file at `CONFIG_PATH` (default `./config.yaml`), or, when
 * that default file is absent, a one-group config from `GEMINI_API_KEYS=k1,k2`. `CLIENT_TOKENS`,
 * `HOST`, `PORT`, `DYNAMODB_ENDPOINT` and `TABLE_NAME` override the file. Throws {@link ConfigError} naming the bad field.
 */
export function loadConfig(env: Env = process.env, cwd = process.cwd()): ProxyConfig {
  return loadConfigSource(env, cwd).config;
}

/** {@link loadConfig}, also saying which file (and which text of it) the configuration was read from. */
export function loadConfigSource(env: Env = process.env, cwd = process.cwd()): LoadedConfig {
  const explicitPath = env.CONFIG_PATH !== undefined && env.CONFIG_PATH !== '';
  const path = resolve(cwd, explicitPath ? env.CONFIG_PATH! : 'config.yaml');
  if (existsSync(path)) {
    const text = readText(path);
    return { config: configFromText(text, path, env), file: { path, text } };
  }
  if (explicitPath) throw new ConfigError(`CONFIG_PATH: no file at ${path}`);
  if (env.GEMINI_API_KEYS !== undefined && env.GEMINI_API_KEYS.trim() !== '') {
    const raw = { groups: [{ name: 'default', api_keys: splitList(env.GEMINI_API_KEYS) }] };
    return { config: withEnv(raw, env), file: undefined };
  }
  throw new ConfigError(
    'no configuration: create config.yaml (see config.example.yaml), set CONFIG_PATH, or set GEMINI_API_KEYS=key1,key2',
  );
}

/** The configuration a config file's text describes (`path` names it in errors), with the overrides of `env`. */
export function configFromText(text: string, path: string, env: Env = process.env): ProxyConfig {
  return withEnv(parseYaml(text, path), env);
}

/** Applies the environment's overrides to raw configuration data and validates it. */
function withEnv(raw: Record<string, unknown>, env: Env): ProxyConfig {
  const config: Record<string, unknown> = { ...raw };
  const server: Record<string, unknown> = isRecord(config.server) ? { ...config.server } : {};
  if (env.HOST !== undefined && env.HOST !== '') server.host = env.HOST;
  if (env.PORT !== undefined && env.PORT !== '') {
    const port = Number(env.PORT);
    if (!Number.isInteger(port) || port < 0 || port > 65535)
      throw new ConfigError('PORT: expected an integer 0-65535');
    server.port = port;
  }
  if (Object.keys(server).length > 0) config.server = server;
  const dynamoEndpoint = env.DYNAMODB_ENDPOINT?.trim();
  const table = env.TABLE_NAME?.trim();
  if (dynamoEndpoint || table) {
    const state: Record<string, unknown> = isRecord(config.state) ? { ...config.state } : {};
    state.store = 'dynamodb';
    if (dynamoEndpoint) {
      state.endpoint = dynamoEndpoint;
      // An endpoint means a local engine: create the table unless the file says otherwise.
      state.create_table ??= true;
    }
    if (table) state.table = table;
    config.state = state;
  }
  if (env.CLIENT_TOKENS !== undefined && env.CLIENT_TOKENS.trim() !== '') {
    config.client_tokens = splitList(env.CLIENT_TOKENS);
  }
  return parseConfig(config);
}
