import { HealthMetrics } from '../adapters/emf-metrics.js';
import { LambdaInstance } from '../adapters/lambda-env.js';
import { configuredKeys } from '../core/config/derived.js';
import { ConfigError, parseGroups } from '../core/config/parse.js';
import { DEFAULT_NATIVE_BASE_URL } from '../core/config/schema.js';
import { keyId } from '../core/credentials.js';
import { type CheckedGroup, runHealthCheck } from '../core/health-check.js';
import { type ProxyEndpoint, parseProxyUrl } from '../core/upstream-proxy.js';

/** Every environment variable the health-check function reads; the stack sets exactly these. */
export const HEALTH_CHECK_ENV = [
  'TABLE_NAME',
  'KEYS_SECRET_ID',
  'METRICS_NAMESPACE',
  'LOG_LEVEL',
  'PROXY_SETTINGS',
  'CHECK_CONCURRENCY',
] as const;

export type HealthCheckEnv = Partial<Record<(typeof HEALTH_CHECK_ENV)[number], string>>;

/** What one instance keeps between scheduled runs: the shared parts, its metrics and how it checks. */
export class HealthCheckRuntime extends LambdaInstance {
  private readonly metrics: HealthMetrics;
  private readonly nativeBaseUrl: string;
  private readonly concurrency: number;
  /** `upstream.proxy_url` from the stack's settings: for groups without their own. */
  private readonly proxy: ProxyEndpoint | undefined;

  constructor(env: HealthCheckEnv) {
    // Each run reads the keys afresh: runs are minutes apart.
    super(env, { secretTimeoutMs: 5000, secretMaxAgeMs: 0, logFields: { function: 'health-check' } });
    this.metrics = new HealthMetrics(this.metricsNamespace);
    const nativeBaseUrl = this.settings.upstream?.native_base_url ?? DEFAULT_NATIVE_BASE_URL;
    this.nativeBaseUrl = nativeBaseUrl.replace(/\/+$/, '');
    this.concurrency = Number(env.CHECK_CONCURRENCY ?? 4);
    const proxyUrl = this.settings.upstream?.proxy_url;
    this.proxy = proxyUrl === undefined ? undefined : parseProxyUrl(proxyUrl, 'upstream.proxy_url');
  }

  /** Checks every key within `remainingMs` (less a margin), reports counts as metrics, and logs dead keys. */
  async run(remainingMs: number): Promise<{ checked: number; skipped: number; dead: number }> {
    const text = await this.keys.get();
    if (text === undefined) throw new Error('keys secret unavailable');
    let groups: CheckedGroup[];
    try {
      const raw = (JSON.parse(text) as { groups?: unknown }).groups;
      groups = parseGroups(raw).map((g) => ({
        name: g.name,
        keys: new Map(configuredKeys(g).map((k) => [keyId(k.apiKey), k.apiKey])),
        proxy: g.proxy_url ?? this.proxy,
      }));
    } catch (err) {
      // Never the content: only which field is wrong.
      throw new Error(`keys secret rejected: ${err instanceof ConfigError ? err.message : 'not valid JSON'}`);
    }
    const result = await runHealthCheck({
      groups,
      store: await this.store,
      upstream: this.upstream,
      nativeBaseUrl: this.nativeBaseUrl,
      concurrency: this.concurrency,
      budgetMs: Math.max(1000, remainingMs - 5000),
      now: Date.now,
    });
    const skipped = result.checks.filter((c) => c.outcome === 'skipped').length;
    this.metrics.publish(result.groups, skipped);
    const summary = {
      checked: result.checks.length - skipped,
      skipped,
      dead: result.checks.filter((c) => c.outcome === 'dead').length,
    };
    this.logger.info('health check done', { ...summary, groups: groups.length });
    for (const c of result.checks) {
      if (c.outcome === 'dead')
        this.logger.warn('key dead', { group: c.group, keyId: c.keyId, reason: c.reason });
    }
    return summary;
  }
}
