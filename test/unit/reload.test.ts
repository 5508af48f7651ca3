import { describe, expect, it } from 'vitest';
import { MemoryKeyStateStore } from '../../lambda/adapters/state/memory-store.js';
import { ConfigError, parseConfig } from '../../lambda/core/config/parse.js';
import type { UpstreamClient } from '../../lambda/core/http.js';
import type { Logger } from '../../lambda/core/logger.js';
import { applicable, ProxyGenerations } from '../../lambda/local/reload.js';

const base = {
  client_tokens: ['t'],
  groups: [{ name: 'g', api_keys: ['k1'] }],
  upstream: { model_list_ms: 0 },
};
const config = (overrides: Record<string, unknown> = {}) => parseConfig({ ...base, ...overrides });

const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {} };
const unused: UpstreamClient = {
  send: () => Promise.reject(new Error('no upstream call expected')),
};

describe('Function: applicable', () => {
  it('takes the new configuration whole when nothing needs a restart', () => {
    // Prepare
    const next = config({
      client_tokens: ['t', 'u'],
      policy: { max_attempts: 3 },
      server: { max_body_bytes: 5 },
    });

    // Act
    const { config: applied, restartNeeded } = applicable(config(), next);

    // Assess
    expect(restartNeeded).toEqual([]);
    expect(applied).toEqual(next);
  });

  it('keeps the running listener, state and circuit settings, naming each that changed', () => {
    // Prepare
    const running = config({ state: { cache_ms: 50 } });
    const next = config({
      server: { port: 9000, header_timeout_ms: 5000, max_body_bytes: 5 },
      state: { cache_ms: 10, region: 'eu-west-1' },
      policy: { circuit_open_ms: 1000, max_attempts: 3 },
    });

    // Act
    const { config: applied, restartNeeded } = applicable(running, next);

    // Assess
    expect(restartNeeded).toEqual([
      'server.port',
      'server.header_timeout_ms',
      'state.cache_ms',
      'state.region',
      'policy.circuit_open_ms',
    ]);
    expect(applied.server).toEqual({ ...next.server, port: 8081, header_timeout_ms: 10_000 });
    expect(applied.state).toEqual(running.state);
    expect(applied.policy).toEqual({ ...next.policy, circuit_open_ms: running.policy.circuit_open_ms });
  });
});

describe('Class: ProxyGenerations', () => {
  it('serves new requests with a new proxy and names the settings left for a restart', () => {
    // Prepare
    const generations = new ProxyGenerations(config(), {
      store: new MemoryKeyStateStore(),
      upstream: unused,
      logger: quiet,
    });
    const first = generations.proxy;

    // Act
    const outcome = generations.reload(config({ client_tokens: ['u'], server: { port: 1 } }));

    // Assess
    expect(generations.proxy).not.toBe(first);
    expect(outcome.restartNeeded).toEqual(['server.port']);
    expect(generations.config.client_tokens).toEqual(['u']);
    expect(generations.config.server.port).toBe(8081);
  });

  it('refuses to drop every token while the running host is not loopback, whatever the file says', () => {
    // Prepare: running on all interfaces with a token; the edit removes the token and names a loopback host
    const generations = new ProxyGenerations(config({ server: { host: '0.0.0.0' } }), {
      store: new MemoryKeyStateStore(),
      upstream: unused,
      logger: quiet,
    });
    const first = generations.proxy;
    const next = config({ client_tokens: [], server: { host: '127.0.0.1', allow_unauthenticated: true } });

    // Act
    const act = () => generations.reload(next);

    // Assess
    expect(act).toThrow(ConfigError);
    expect(act).toThrow('client_tokens');
    expect(generations.proxy).toBe(first);
  });
});
