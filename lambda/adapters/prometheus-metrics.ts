import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { DetailedHealth, KeyCounts } from '../core/detailed-health.js';
import type { MetricsSink, RequestMetrics } from '../core/metrics.js';

/** Distinct model label values kept; later names count as `other` (a bound should the model list be off). */
const MAX_MODELS = 50;
/** Request latency buckets, in seconds: a refusal takes milliseconds, a thinking model minutes. */
const LATENCY_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];
const KEY_STATES: ReadonlyArray<keyof KeyCounts> = ['active', 'cooling', 'invalid', 'disabled'];
const CIRCUIT_STATES = ['closed', 'open', 'half_open'] as const;

/**
 * Request metrics in Prometheus' text format (prom-client), in a registry of their own (not prom-client's
 * global one: each server has its own). Counters are fed by each request's {@link RequestMetrics}; the
 * keys by state and the circuits are read from `pool` (the serving proxy's `/health/detailed` view) when
 * scraped. Labels are group, model, status, outcome and reason: never a key, a key id or a token.
 */
export class PrometheusMetrics implements MetricsSink {
  readonly registry = new Registry();
  private readonly models = new Set<string>();
  private readonly requests: Counter<'group' | 'model' | 'status'>;
  private readonly attempts: Counter<'group' | 'outcome'>;
  private readonly retries: Counter<'group'>;
  private readonly cooldowns: Counter<'group'>;
  private readonly refusals: Counter<'reason'>;
  private readonly tokens: Counter<'group' | 'model' | 'direction'>;
  private readonly latency: Histogram<'group'>;
  private readonly firstByte: Histogram<'group'>;

  /** `pool` is read at each scrape; a failure leaves the key and circuit gauges empty for that scrape. */
  constructor(pool: () => Promise<DetailedHealth>) {
    const registers = [this.registry];
    const counter = <L extends string>(name: string, help: string, labelNames: L[]) =>
      new Counter<L>({ name, help, labelNames, registers });
    this.requests = counter(
      'gemini_proxy_requests_total',
      'Requests answered, by group, model and HTTP status.',
      ['group', 'model', 'status'],
    );
    this.attempts = counter(
      'gemini_proxy_upstream_attempts_total',
      'Gemini calls by outcome: success, quota (429), transient (5xx, network, timeout), dead_key, other (e.g. a 400 passed on).',
      ['group', 'outcome'],
    );
    this.retries = counter('gemini_proxy_upstream_retries_total', 'Gemini calls retried on the same key.', [
      'group',
    ]);
    this.cooldowns = counter('gemini_proxy_key_cooldowns_total', 'Key cooldowns set after a Gemini error.', [
      'group',
    ]);
    this.refusals = counter(
      'gemini_proxy_refusals_total',
      "Requests the proxy refused itself, by reason (the log line's refusal).",
      ['reason'],
    );
    this.tokens = counter(
      'gemini_proxy_tokens_total',
      "Tokens in Gemini's usage, by direction (input, output).",
      ['group', 'model', 'direction'],
    );
    this.latency = new Histogram({
      name: 'gemini_proxy_request_duration_seconds',
      help: 'Time from a request to the end of its answer (a stream: its last byte).',
      labelNames: ['group'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.firstByte = new Histogram({
      name: 'gemini_proxy_time_to_first_byte_seconds',
      help: "Time until Gemini's response headers, for answers that came from Gemini.",
      labelNames: ['group'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    const snapshot = () => pool().catch(() => undefined);
    new Gauge({
      name: 'gemini_proxy_keys',
      help: 'Configured keys by state (cooling: active with a cooldown in force for some model).',
      labelNames: ['group', 'state'],
      registers,
      async collect() {
        this.reset();
        for (const group of (await snapshot())?.groups ?? []) {
          for (const state of KEY_STATES) this.set({ group: group.name, state }, group.counts[state]);
        }
      },
    });
    new Gauge({
      name: 'gemini_proxy_circuits',
      help: "Upstream targets' circuits on this instance, by state.",
      labelNames: ['state'],
      registers,
      async collect() {
        this.reset();
        const circuits = (await snapshot())?.circuits;
        if (circuits === undefined) return;
        for (const state of CIRCUIT_STATES) {
          this.set({ state }, circuits.filter((c) => c.state === state).length);
        }
      },
    });
  }

  record(m: RequestMetrics): void {
    const group = m.group === '' ? 'none' : m.group;
    const model = this.modelLabel(m.model);
    this.requests.inc({ group, model, status: String(m.status) });
    this.latency.observe({ group }, m.latencyMs / 1000);
    if (m.timeToFirstByteMs !== undefined) this.firstByte.observe({ group }, m.timeToFirstByteMs / 1000);
    const { transient, quota, deadKey } = m.upstreamErrors;
    // The calls that were not errors: the answer passed on (a success, or Gemini's own 4xx).
    const answered = Math.max(0, m.attempts - transient - quota - deadKey);
    const outcomes = {
      success: m.status < 400 ? answered : 0,
      other: m.status < 400 ? 0 : answered,
      quota,
      transient,
      dead_key: deadKey,
    };
    for (const [outcome, n] of Object.entries(outcomes)) if (n > 0) this.attempts.inc({ group, outcome }, n);
    if (m.retries > 0) this.retries.inc({ group }, m.retries);
    if (m.keyCooldowns > 0) this.cooldowns.inc({ group }, m.keyCooldowns);
    if (m.refusal !== undefined) this.refusals.inc({ reason: m.refusal });
    if (m.inputTokens !== undefined) this.tokens.inc({ group, model, direction: 'input' }, m.inputTokens);
    if (m.outputTokens !== undefined) this.tokens.inc({ group, model, direction: 'output' }, m.outputTokens);
  }

  /** The exposition, and its content type (`text/plain; version=0.0.4`). */
  async scrape(): Promise<{ readonly contentType: string; readonly body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }

  private modelLabel(model: string | undefined): string {
    if (model === undefined || model === '') return 'none';
    if (this.models.has(model)) return model;
    if (this.models.size >= MAX_MODELS) return 'other';
    this.models.add(model);
    return model;
  }
}
