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

function readYaml(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(
      `CONFIG_PATH: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
    );
  }
  try {
    return parse(text) ?? {};
  } catch (err) {
    // The parser's own message quotes the offending line, which may hold a key: report position only.
    if (err instanceof YAMLParseError) {
      const pos = err.linePos?.[0];
      const where = pos === undefined ? '' : ` at line ${pos.line}, column ${pos.col}`;
      throw new ConfigError(`${path}: YAML syntax error${where} (${err.code})`);
    }
    throw new ConfigError(`${path}: YAML syntax error`);
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Loads the proxy configuration: the YAML file at `CONFIG_PATH` (default `./config.yaml`), or, when
 * that default file is absent, a one-group config from `GEMINI_API_KEYS=k1,k2`. `CLIENT_TOKENS`,
 * `HOST`, `PORT`, `DYNAMODB_ENDPOINT` and `TABLE_NAME` override the file. Throws {@link ConfigError} naming the bad field.
 */
export function loadConfig(env: Env = process.env, cwd = process.cwd()): ProxyConfig {
  const explicitPath = env.CONFIG_PATH !== undefined && env.CONFIG_PATH !== '';
  const path = resolve(cwd, explicitPath ? env.CONFIG_PATH! : 'config.yaml');
  let raw: unknown;
  if (existsSync(path)) {
    raw = readYaml(path);
    if (!isRecord(raw)) throw new ConfigError(`${path}: expected a YAML mapping at the top level`);
  } else if (explicitPath) {
    throw new ConfigError(`CONFIG_PATH: no file at ${path}`);
  } else if (env.GEMINI_API_KEYS !== undefined && env.GEMINI_API_KEYS.trim() !== '') {
    raw = { groups: [{ name: 'default', api_keys: splitList(env.GEMINI_API_KEYS) }] };
  } else {
    throw new ConfigError(
      'no configuration: create config.yaml (see config.example.yaml), set CONFIG_PATH, or set GEMINI_API_KEYS=key1,key2',
    );
  }

  const config: Record<string, unknown> = { ...(raw as Record<string, unknown>) };
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
