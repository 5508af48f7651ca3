import { HealthMetrics } from '../adapters/emf-metrics.js';
import { lambdaState, parseSettings, required, secretsClient } from '../adapters/lambda-env.js';
import { JsonLogger, parseLogLevel } from '../adapters/logger.js';
import { SecretCache } from '../adapters/secret-cache.js';
import { createStateStore } from '../adapters/state-store.js';
import { NodeUpstreamClient } from '../adapters/upstream-http.js';
import { configuredKeys } from '../core/config/derived.js';
import { ConfigError, parseGroups, parseStateConfig } from '../core/config/parse.js';
import { DEFAULT_NATIVE_BASE_URL } from '../core/config/schema.js';
import { type CheckedGroup, runHealthCheck } from '../core/health-check.js';
import type { KeyStateStore } from '../core/key-state.js';
import { keyId } from '../core/secrets.js';

/** Every environment variable the health-check function reads; the stack sets exactly these. */
export const HEALTH_CHECK_ENV = [
  'TABLE_NAME',
  'KEYS_SECRET_ID',
  'METRICS_NAMESPACE',
  'LOG_LEVEL',
  'PROXY_SETTINGS',
  'CHECK_CONCURRENCY',
] as const;

type Env = Partial<Record<(typeof HEALTH_CHECK_ENV)[number], string>>;

interface LambdaContext {
  getRemainingTimeInMillis(): number;
}

/** What one instance keeps between scheduled runs. */
class HealthCheckRuntime {
  readonly logger: JsonLogger;
  private readonly store: Promise<KeyStateStore>;
  private readonly upstream = new NodeUpstreamClient();
  private readonly keys: SecretCache;
  private readonly metrics: HealthMetrics;
  private readonly nativeBaseUrl: string;
  private readonly concurrency: number;

  constructor(env: Env) {
    this.logger = new JsonLogger(parseLogLevel(env.LOG_LEVEL), undefined, { function: 'health-check' });
    const settings = parseSettings(env.PROXY_SETTINGS);
    const upstream = (settings.upstream ?? {}) as { native_base_url?: string };
    this.nativeBaseUrl = (upstream.native_base_url ?? DEFAULT_NATIVE_BASE_URL).replace(/\/+$/, '');
    this.concurrency = Number(env.CHECK_CONCURRENCY ?? 4);
    this.store = createStateStore(
      parseStateConfig(lambdaState(settings, required(env, 'TABLE_NAME'))),
      this.logger,
    );
    this.keys = new SecretCache({
      client: secretsClient(5000),
      secretId: required(env, 'KEYS_SECRET_ID'),
      maxAgeMs: 0,
      logger: this.logger,
    });
    this.metrics = new HealthMetrics(required(env, 'METRICS_NAMESPACE'));
  }

  async run(remainingMs: number): Promise<{ checked: number; skipped: number; dead: number }> {
    const text = await this.keys.get();
    if (text === undefined) throw new Error('keys secret unavailable');
    let groups: CheckedGroup[];
    try {
      const raw = (JSON.parse(text) as { groups?: unknown }).groups;
      groups = parseGroups(raw).map((g) => ({
        name: g.name,
        keys: new Map(configuredKeys(g).map((k) => [keyId(k.apiKey), k.apiKey])),
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

let runtime: HealthCheckRuntime | undefined;

/** EventBridge-scheduled entry: checks every key and reports counts as metrics. */
export const handler = async (_event: unknown, context: LambdaContext) => {
  runtime ??= new HealthCheckRuntime(process.env as Env);
  return runtime.run(context.getRemainingTimeInMillis());
};
