/** What a new configuration may change in a running local server, and what waits for a restart. */
import { ConfigError, isLoopbackHost } from '../core/config/parse.js';
import type { ProxyConfig } from '../core/config/schema.js';
import type { UpstreamClient } from '../core/http.js';
import { InstanceHealth } from '../core/instance-health.js';
import type { KeyStateStore } from '../core/key-state/port.js';
import type { Logger } from '../core/logger.js';
import type { MetricsSink } from '../core/metrics.js';
import { ModelCatalog } from '../core/model-catalog.js';
import { GeminiProxy } from '../core/proxy.js';
import { StateWrites } from '../core/state-writes.js';

/**
 * Settings read once when the server starts: the listening sockets and their timers (`server`), the state
 * store (`state`), and what the instance's circuits and health scores were built with (`policy`: they
 * outlive a configuration, so they keep the settings they were made with).
 */
const RESTART_FIELDS = {
  server: [
    'host',
    'port',
    'header_timeout_ms',
    'request_receive_timeout_ms',
    'idle_timeout_ms',
    'metrics_host',
    'metrics_port',
  ],
  state: 'all',
  policy: ['circuit_failure_threshold', 'circuit_open_ms', 'circuit_half_open_probes', 'health_floor'],
} as const satisfies Partial<Record<keyof ProxyConfig, readonly string[] | 'all'>>;

type Section = keyof typeof RESTART_FIELDS;

function fieldsOf(section: Section, a: object, b: object): string[] {
  const fields = RESTART_FIELDS[section];
  return fields === 'all' ? [...new Set([...Object.keys(a), ...Object.keys(b)])] : [...fields];
}

/**
 * A configuration to run now: `next`, except for the settings that take effect on restart, which keep
 * their `running` values; and the names of those that differ (`server.port`), for the operator.
 */
export function applicable(
  running: ProxyConfig,
  next: ProxyConfig,
): { readonly config: ProxyConfig; readonly restartNeeded: readonly string[] } {
  const restartNeeded: string[] = [];
  const kept: Record<string, Record<string, unknown>> = {};
  for (const section of Object.keys(RESTART_FIELDS) as Section[]) {
    const was = running[section] as Record<string, unknown>;
    const wants = next[section] as Record<string, unknown>;
    const merged: Record<string, unknown> = { ...wants };
    for (const field of fieldsOf(section, was, wants)) {
      if (!sameValue(was[field], wants[field])) restartNeeded.push(`${section}.${field}`);
      if (field in was) merged[field] = was[field];
      else delete merged[field];
    }
    kept[section] = merged;
  }
  return { config: { ...next, ...kept } as ProxyConfig, restartNeeded };
}

/** Whether two configuration values (JSON-like, as parsed) are the same. */
export function sameValue(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** The `upstream` settings the model catalog is built from: a change needs a new catalog. */
export function catalogSettingsChanged(running: ProxyConfig, next: ProxyConfig): boolean {
  const pick = (u: ProxyConfig['upstream']) => [
    u.native_base_url,
    u.model_list_ms,
    u.connect_timeout_ms,
    u.first_byte_timeout_ms,
    u.proxy_url,
  ];
  return !sameValue(pick(running.upstream), pick(next.upstream));
}

export interface ProxyGenerationDeps {
  readonly store: KeyStateStore;
  readonly upstream: UpstreamClient;
  readonly logger: Logger;
  readonly now?: (() => number) | undefined;
  readonly metrics?: MetricsSink | undefined;
}

/** What a reload did. */
export interface ReloadOutcome {
  /** Changed settings that keep their running value until a restart (`server.port`). */
  readonly restartNeeded: readonly string[];
}

/**
 * The proxy a local server serves with, rebuilt for each new configuration. What outlives a configuration
 * is handed to each new proxy: the key-state store, and the instance's circuits and health scores, its
 * pending state writes and its model list (read again only when its `upstream` settings change). A request
 * is served to its end by the proxy that took it.
 */
export class ProxyGenerations {
  private running: ProxyConfig;
  private serving: GeminiProxy;
  private catalog: ModelCatalog;
  private readonly health: InstanceHealth;
  private readonly writes: StateWrites;

  constructor(
    config: ProxyConfig,
    private readonly deps: ProxyGenerationDeps,
  ) {
    this.running = config;
    this.health = new InstanceHealth(config.policy, deps.now);
    this.writes = new StateWrites(deps.store, deps.logger);
    this.catalog = this.catalogFor(config);
    this.serving = this.build(config);
  }

  /** The configuration in effect. */
  get config(): ProxyConfig {
    return this.running;
  }

  /** The proxy new requests go to. */
  get proxy(): GeminiProxy {
    return this.serving;
  }

  /**
   * Serves new requests with `next` (already validated), but for the settings read only at start, which
   * keep their running values: those that differ are logged, one warning each, and returned. Throws
   * {@link ConfigError} for a configuration that would serve without tokens on a non-loopback address.
   */
  reload(next: ProxyConfig): ReloadOutcome {
    const { config, restartNeeded } = applicable(this.running, next);
    if (config.client_tokens.length === 0 && !isLoopbackHost(config.server.host)) {
      // The file may name a loopback host, but the server keeps listening where it started.
      throw new ConfigError(
        'invalid configuration:\n  client_tokens: expected at least 1 token while the running server.host is not a loopback address',
      );
    }
    if (catalogSettingsChanged(this.running, config)) this.catalog = this.catalogFor(config);
    this.serving = this.build(config);
    this.running = config;
    for (const field of restartNeeded) this.deps.logger.warn(`${field}: takes effect on restart`, { field });
    this.deps.logger.info('config reloaded', {
      groups: config.groups.length,
      keys: config.groups.reduce((n, g) => n + g.api_keys.length, 0),
      clientTokens: config.client_tokens.length,
    });
    return { restartNeeded };
  }

  /** Resolves once every state write started so far has settled. */
  settle(): Promise<void> {
    return this.writes.settle();
  }

  private catalogFor(config: ProxyConfig): ModelCatalog {
    const { upstream, logger, now } = this.deps;
    return ModelCatalog.of(config.upstream, { upstream, logger, now });
  }

  private build(config: ProxyConfig): GeminiProxy {
    return new GeminiProxy({
      ...this.deps,
      config,
      health: this.health,
      writes: this.writes,
      catalog: this.catalog,
    });
  }
}
