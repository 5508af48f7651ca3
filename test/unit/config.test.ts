import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../lambda/adapters/config-loader.js';
import { configuredKeys, configuredTokens } from '../../lambda/core/config/derived.js';
import { ConfigError, isLoopbackHost, parseConfig } from '../../lambda/core/config/parse.js';
import { DEFAULT_TARGET_URL } from '../../lambda/core/config/schema.js';
import { tempDirs } from '../support/temp-dir.js';

const SECRET = 'fake-key-do-not-print-0001';
const tempDir = tempDirs();

function errorOf(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

function dirWith(yaml: string): string {
  const dir = tempDir('gp-config-');
  writeFileSync(join(dir, 'config.yaml'), yaml);
  return dir;
}

describe('Function: parseConfig', () => {
  it('applies defaults', () => {
    // Act
    const config = parseConfig({ client_tokens: ['t'], groups: [{ name: 'g', api_keys: ['k1', 'k2'] }] });

    // Assess
    expect(config.server).toEqual({
      host: '127.0.0.1',
      port: 8081,
      allow_unauthenticated: false,
      max_body_bytes: 10485760,
      allow_route_families: [],
      header_timeout_ms: 10000,
      request_receive_timeout_ms: 30000,
      idle_timeout_ms: 65000,
      write_stall_timeout_ms: 60000,
      metrics_host: '127.0.0.1',
    });
    expect(config.groups[0]?.target_url).toBe(DEFAULT_TARGET_URL);
    expect(config.policy.transient_retries).toBe(2);
    expect(config.state.store).toBe('memory');
  });

  it('adds a trailing slash to target_url so paths append', () => {
    const config = parseConfig({
      client_tokens: ['t'],
      groups: [{ name: 'g', api_keys: ['k'], target_url: 'http://127.0.0.1:9/v1beta/openai' }],
    });
    expect(config.groups[0]?.target_url).toBe('http://127.0.0.1:9/v1beta/openai/');
  });

  it('names the field path of an empty key list', () => {
    const err = errorOf(() =>
      parseConfig({
        client_tokens: ['t'],
        groups: [
          { name: 'a', api_keys: [SECRET] },
          { name: 'b', api_keys: [] },
        ],
      }),
    );
    expect(err.message).toContain('groups[1].api_keys: expected at least 1 item');
    expect(err.message).not.toContain(SECRET);
  });

  it('names unknown fields and wrong types without echoing values', () => {
    const err = errorOf(() =>
      parseConfig({
        client_tokens: ['t'],
        groups: [{ name: 'a', api_keys: [SECRET], target_url: SECRET, colour: 'blue' }],
        server: { port: 'eighty' },
      }),
    );
    expect(err.message).toContain('groups[0].target_url: expected an http(s) URL');
    expect(err.message).toContain('groups[0]: unknown field colour');
    expect(err.message).toMatch(/server\.port: /);
    expect(err.message).not.toContain(SECRET);
  });

  it('does not echo an unknown field that could be a key pasted a line off', () => {
    const err = errorOf(() =>
      parseConfig({ client_tokens: ['t'], groups: [{ name: 'a', api_keys: ['k'], [SECRET]: null }] }),
    );
    expect(err.message).toContain('groups[0]: unknown field (a name not shown)');
    expect(err.message).not.toContain(SECRET);
  });

  it('reads a group proxy_url and the upstream default, and names the field of a bad one without echoing it', () => {
    const config = parseConfig({
      client_tokens: ['t'],
      upstream: { proxy_url: 'http://corp:3128' },
      groups: [
        { name: 'a', api_keys: ['k'], proxy_url: 'socks5h://u:p%40ss@h:1' },
        { name: 'b', api_keys: ['k2'] },
      ],
    });
    expect(config.groups[0]?.proxy_url).toMatchObject({
      scheme: 'socks5h',
      host: 'h',
      port: 1,
      auth: { password: 'p@ss' },
    });
    expect(config.upstream.proxy_url).toMatchObject({ scheme: 'http', host: 'corp', port: 3128 });
    expect(config.groups[1]?.proxy_url).toBeUndefined();
    const err = errorOf(() =>
      parseConfig({
        client_tokens: ['t'],
        groups: [{ name: 'a', api_keys: ['k'], proxy_url: 'socks5://u:hunter2@h/x' }],
      }),
    );
    expect(err.message).toContain('groups[0].proxy_url: a proxy URL takes no path, query or fragment');
    expect(err.message).not.toContain('hunter2');
  });

  it('accepts keys with projects, limits and client tokens with rpm', () => {
    const config = parseConfig({
      client_tokens: ['plain', { token: 'limited', rpm: 30 }],
      groups: [{ name: 'g', api_keys: ['k1', { key: 'k2', project: 'p' }], limits: { rpm: 10, rpd: 250 } }],
    });
    expect(configuredKeys(config.groups[0]!)).toEqual([
      { apiKey: 'k1', project: undefined, disabled: false },
      { apiKey: 'k2', project: 'p', disabled: false },
    ]);
    expect(configuredTokens(config)).toEqual([
      { token: 'plain', rpm: undefined },
      { token: 'limited', rpm: 30 },
    ]);
    expect(config.groups[0]?.limits).toEqual({ default: { rpm: 10, rpd: 250 }, models: {} });
  });

  it('names bad limits, key objects and client entries', () => {
    const err = errorOf(() =>
      parseConfig({
        client_tokens: [{ token: SECRET, rpm: 0 }],
        groups: [{ name: 'g', api_keys: [{ key: SECRET, project: '' }], limits: { rpm: -1 } }],
      }),
    );
    expect(err.message).toContain('groups[0].limits.rpm: expected a positive number');
    expect(err.message).toContain('groups[0].api_keys[0].project: expected a project id');
    expect(err.message).toContain('client_tokens[0].rpm: expected a positive number');
    expect(err.message).not.toContain(SECRET);
  });

  it('rejects duplicate group names', () => {
    const err = errorOf(() =>
      parseConfig({
        client_tokens: ['t'],
        groups: [
          { name: 'a', api_keys: ['k'] },
          { name: 'a', api_keys: ['j'] },
        ],
      }),
    );
    expect(err.message).toContain('groups[1].name: duplicate group name');
  });

  it('reads fallbacks and names every bad chain by its field, never echoing a bad name', () => {
    // Prepare: a misplaced key where a model name goes (model names are lower-case: keys are not)
    const GOOGLE_KEY = 'AIzaSyFAKE-key-do-not-print-0002';
    const base = { client_tokens: ['t'], groups: [{ name: 'g', api_keys: [SECRET] }] };

    // Act
    const config = parseConfig({
      ...base,
      fallbacks: { 'gemini-2.5-pro': ['gemini-2.5-flash', 'models/gemini-2.5-flash-lite'] },
    });
    const chains = errorOf(() =>
      parseConfig({
        ...base,
        fallbacks: {
          'gemini-2.5-pro': ['gemini-2.5-flash', 'models/gemini-2.5-pro', 'models/gemini-2.5-flash'],
          'models/gemini-2.5-pro': ['gemini-2.5-flash'],
        },
      }),
    );
    const names = errorOf(() =>
      parseConfig({
        ...base,
        fallbacks: { [GOOGLE_KEY]: ['gemini-2.5-flash'], 'gemini-2.5-flash': [GOOGLE_KEY], other: 'x' },
      }),
    );

    // Assess
    expect(parseConfig(base).fallbacks).toEqual({});
    expect(config.fallbacks).toEqual({
      'gemini-2.5-pro': ['gemini-2.5-flash', 'models/gemini-2.5-flash-lite'],
    });
    expect(chains.message).toContain("fallbacks.gemini-2.5-pro[1]: a model can't fall back to itself");
    expect(chains.message).toContain('fallbacks.gemini-2.5-pro[2]: the model is already in the list');
    expect(chains.message).toContain('fallbacks.models/gemini-2.5-pro: a second chain for the same model');
    expect(names.message).toContain('fallbacks: a key is not valid (expected a model name');
    expect(names.message).toContain('fallbacks.gemini-2.5-flash[0]: expected a model name');
    expect(names.message).toContain('fallbacks.other: expected a list of models');
    expect(names.message).not.toContain(GOOGLE_KEY);
  });

  it('refuses to start without client tokens unless allowed on loopback', () => {
    const groups = [{ name: 'a', api_keys: ['k'] }];
    expect(errorOf(() => parseConfig({ groups })).message).toContain(
      'client_tokens: expected at least 1 token',
    );
    expect(
      errorOf(() => parseConfig({ groups, server: { host: '0.0.0.0', allow_unauthenticated: true } }))
        .message,
    ).toContain('server.allow_unauthenticated: only allowed when server.host is a loopback address');
    expect(
      parseConfig({ groups, server: { host: '127.0.0.1', allow_unauthenticated: true } }).client_tokens,
    ).toEqual([]);
  });
});

describe('Function: isLoopbackHost', () => {
  it.each([
    ['127.0.0.1', true],
    ['127.1.2.3', true],
    ['localhost', true],
    ['::1', true],
    ['[::1]', true],
    ['0.0.0.0', false],
    ['::', false],
    ['192.168.1.1', false],
    ['127.0.0.1.example.com', false],
  ])('%s → %s', (host, expected) => {
    expect(isLoopbackHost(host)).toBe(expected);
  });
});

describe('Function: loadConfig', () => {
  it('builds a one-group config from GEMINI_API_KEYS when no file exists', () => {
    const dir = tempDir('gp-config-');
    const config = loadConfig({ GEMINI_API_KEYS: 'k1, k2,', CLIENT_TOKENS: 'tok' }, dir);
    expect(config.groups).toHaveLength(1);
    expect(config.groups[0]?.api_keys).toEqual(['k1', 'k2']);
    expect(config.client_tokens).toEqual(['tok']);
  });

  it('reads the YAML file and lets PORT and HOST override it', () => {
    const dir = dirWith(
      'server: { host: 127.0.0.1, port: 9000 }\nclient_tokens: [t]\ngroups:\n  - { name: g, api_keys: [k] }\n',
    );
    expect(loadConfig({}, dir).server.port).toBe(9000);
    const config = loadConfig({ PORT: '9100', HOST: '::1' }, dir);
    expect(config.server.port).toBe(9100);
    expect(config.server.host).toBe('::1');
  });

  it('switches to DynamoDB state with DYNAMODB_ENDPOINT and TABLE_NAME', () => {
    const dir = dirWith('client_tokens: [t]\ngroups:\n  - { name: g, api_keys: [k] }\n');
    expect(loadConfig({}, dir).state.store).toBe('memory');
    const config = loadConfig({ DYNAMODB_ENDPOINT: 'http://127.0.0.1:8000', TABLE_NAME: 'my-table' }, dir);
    expect(config.state).toMatchObject({
      store: 'dynamodb',
      endpoint: 'http://127.0.0.1:8000',
      table: 'my-table',
      create_table: true,
    });
    expect(loadConfig({ TABLE_NAME: 'on-aws' }, dir).state).toMatchObject({
      table: 'on-aws',
      create_table: false,
    });
  });

  it('reports a bad PORT by name', () => {
    const dir = dirWith('client_tokens: [t]\ngroups:\n  - { name: g, api_keys: [k] }\n');
    expect(errorOf(() => loadConfig({ PORT: 'abc' }, dir)).message).toBe('PORT: expected an integer 0-65535');
  });

  it('reports a YAML syntax error by position without quoting the line', () => {
    const dir = dirWith(`groups:\n  - name: g\n    api_keys: [${SECRET}\n`);
    const err = errorOf(() => loadConfig({}, dir));
    expect(err.message).toMatch(/YAML syntax error at line \d+, column \d+/);
    expect(err.message).not.toContain(SECRET);
  });

  it('explains what to do when nothing is configured', () => {
    const dir = tempDir('gp-config-');
    expect(errorOf(() => loadConfig({}, dir)).message).toContain('GEMINI_API_KEYS');
    expect(errorOf(() => loadConfig({ CONFIG_PATH: 'missing.yaml' }, dir)).message).toContain(
      'CONFIG_PATH: no file at',
    );
  });

  it('accepts the shipped config.example.yaml', () => {
    const config = loadConfig({ CONFIG_PATH: 'config.example.yaml' }, process.cwd());
    expect(config.groups.length).toBeGreaterThan(0);
  });
});
