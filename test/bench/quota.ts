/**
 * `npm run bench:quota`: quota routing across instances. Two proxy instances share one DynamoDB engine
 * (dynalite, or DYNAMODB_ENDPOINT); open-loop loads are spread over both.
 *
 * 1. Proactive limits (`bench: "quota"`): a fake Gemini enforces a per-key quota over short windows
 *    (LIMIT requests per WINDOW_MS per key) and the proxies are configured with the same limits. Loads at
 *    90 % and 200 % of capacity. One JSON line per load: client success %, Gemini 429s as % of Gemini
 *    calls, goodput as % of capacity, latency of the proxy's own refusals, Gemini calls per refusal, and
 *    DynamoDB calls per request.
 * 2. A realistic plan (`bench: "quota-plan"`, see `quota-plan.ts`): Gemini's per project × model
 *    quotas (rpm, input tpm, rpd, limit 0), mixed prompt sizes, proxies that learn the limits from
 *    Gemini's 429s or have them configured per model; loads at 90 % and 150 % of the plan. One JSON line
 *    per load and configuration, then a side-by-side summary (`bench: "quota-plan-summary"`).
 *
 * The engine is dynalite in a process of its own (so that it and the proxies under test don't share an
 * event loop), reached through `startDynamoEngine`'s relay.
 *
 * Env: BENCH_SECONDS, the length of each load (default 20: about 2.5 minutes in all); BENCH_ONLY
 * (`proactive` or `plan`) runs one part; DYNAMODB_ENDPOINT, another engine than dynalite;
 * BENCH_DYNALITE=inprocess runs dynalite in the bench's own process (as `startDynamoEngine` does alone).
 */
import type { ChildProcess } from 'node:child_process';
import http from 'node:http';
import { JsonLogger } from '../../lambda/adapters/logger.js';
import { DynamoDbKeyStateStore } from '../../lambda/adapters/state/dynamodb/store.js';
import { FallbackKeyStateStore } from '../../lambda/adapters/state/fallback-store.js';
import { MemoryKeyStateStore } from '../../lambda/adapters/state/memory-store.js';
import { parseConfig } from '../../lambda/core/config/parse.js';
import { type RunningServer, startLocalServer } from '../../lambda/local/server.js';
import { countCalls } from '../support/call-counter.js';
import { type DynamoEngine, startDynamoEngine, testClient } from '../support/dynamo-engine.js';
import { startFakeGemini } from '../support/fake-gemini.js';
import { startChild } from './children.js';
import { runPlan } from './quota-plan.js';

const KEYS = Array.from({ length: 8 }, (_, i) => `bench-quota-key-${i}`);
const LIMIT = 25;
const WINDOW_MS = 2000;
const SECONDS = Number(process.env.BENCH_SECONDS ?? 20);
const ONLY = process.env.BENCH_ONLY;
const TOKEN = 'bench-quota-token';
const CAPACITY_RPS = (KEYS.length * LIMIT) / (WINDOW_MS / 1000);

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

interface Outcome {
  status: number;
  ms: number;
  /** Gemini calls the proxy made for it (its x-upstream-attempts header). */
  attempts: number;
}

function post(agent: http.Agent, port: number, body: string): Promise<Outcome> {
  const started = performance.now();
  return new Promise((resolve) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        path: '/v1/chat/completions',
        method: 'POST',
        agent,
        headers: {
          authorization: `Bearer ${TOKEN}`,
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
        },
      },
      (res) => {
        res.resume();
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            ms: performance.now() - started,
            attempts: Number(res.headers['x-upstream-attempts'] ?? -1),
          }),
        );
      },
    );
    req.on('error', () => resolve({ status: 0, ms: performance.now() - started, attempts: -1 }));
    req.end(body);
  });
}

/** Sends `rps` requests per second for SECONDS, evenly spaced, alternating between the proxies. */
async function offer(agent: http.Agent, ports: number[], rps: number, model: string): Promise<Outcome[]> {
  const body = JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }] });
  const total = Math.round(rps * SECONDS);
  const started = performance.now();
  const inflight: Promise<Outcome>[] = [];
  for (let i = 0; i < total; i++) {
    const due = started + (i * 1000) / rps;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    inflight.push(post(agent, ports[i % ports.length]!, body));
  }
  return Promise.all(inflight);
}

const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? 0;
};
const r2 = (x: number) => Math.round(x * 100) / 100;

/** The proactive loads: configured per-key limits that match the fake's. */
async function proactive(engine: DynamoEngine): Promise<void> {
  const fake = await startFakeGemini({ keys: KEYS });
  for (const key of KEYS) fake.setQuota(key, { limit: LIMIT, windowMs: WINDOW_MS });
  const config = parseConfig({
    server: { host: '127.0.0.1', port: 0 },
    client_tokens: [TOKEN],
    groups: [
      {
        name: 'bench',
        api_keys: KEYS,
        target_url: fake.openAiBase,
        limits: { rpm: LIMIT, rpm_window_ms: WINDOW_MS },
      },
    ],
    // Every load has a model of its own: not on Gemini's list, so the proxy must not check the list.
    upstream: { native_base_url: fake.url, model_list_ms: 0 },
    policy: { transient_retry_delay_ms: 5 },
  });
  const silent = new JsonLogger('silent');
  const counters: Array<ReturnType<typeof countCalls>> = [];
  const servers: RunningServer[] = [];
  for (let i = 0; i < 2; i++) {
    const client = testClient(engine.endpoint);
    counters.push(countCalls(client));
    const shared = new DynamoDbKeyStateStore({
      client,
      table: engine.table,
      cacheMs: 1000,
      rotationShards: 4,
    });
    const store = new FallbackKeyStateStore(shared, new MemoryKeyStateStore(), {
      timeoutMs: 250,
      retryAfterMs: 5000,
      logger: silent,
    });
    servers.push(await startLocalServer({ config, logger: silent, store }));
  }
  const ports = servers.map((s) => Number(new URL(s.url).port));
  const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });

  try {
    for (const load of [0.9, 2]) {
      // A model of its own per load, so each starts with fresh windows; start on a window boundary.
      const model = `bench-model-${load}`;
      await new Promise((r) => setTimeout(r, WINDOW_MS - (Date.now() % WINDOW_MS) + 5));
      fake.calls.splice(0);
      for (const c of counters) c.reset();
      const outcomes = await offer(agent, ports, CAPACITY_RPS * load, model);
      const ok = outcomes.filter((o) => o.status === 200);
      const refused = outcomes.filter((o) => o.status === 429);
      const quick = refused.filter((o) => o.attempts === 0);
      const geminiCalls = fake.calls.length;
      const gemini429 = fake.calls.filter((c) => c.status === 429).length;
      const dynamoCalls = counters.reduce((n, c) => n + c.total(), 0);
      const capacityInRun = CAPACITY_RPS * SECONDS;
      process.stdout.write(
        `${JSON.stringify({
          bench: 'quota',
          offered_pct_of_capacity: load * 100,
          capacity_rps: CAPACITY_RPS,
          seconds: SECONDS,
          requests: outcomes.length,
          client_success_pct: r2((100 * ok.length) / outcomes.length),
          gemini_429_pct_of_gemini_calls: r2((100 * gemini429) / Math.max(1, geminiCalls)),
          goodput_pct_of_capacity: r2((100 * ok.length) / capacityInRun),
          refused: refused.length,
          refused_without_gemini_call_pct: r2((100 * quick.length) / Math.max(1, refused.length)),
          refused_without_gemini_call_p50_ms: r2(
            quantile(
              quick.map((o) => o.ms),
              0.5,
            ),
          ),
          refused_without_gemini_call_p99_ms: r2(
            quantile(
              quick.map((o) => o.ms),
              0.99,
            ),
          ),
          refused_p99_ms: r2(
            quantile(
              refused.map((o) => o.ms),
              0.99,
            ),
          ),
          // Gemini calls not accounted for by successes: refusals that still cost Gemini a call.
          gemini_calls_per_refusal: r2((geminiCalls - ok.length) / Math.max(1, refused.length)),
          other_statuses: outcomes.length - ok.length - refused.length,
          dynamodb_calls_per_request: r2(dynamoCalls / outcomes.length),
          success_p50_ms: r2(
            quantile(
              ok.map((o) => o.ms),
              0.5,
            ),
          ),
        })}\n`,
      );
    }
  } finally {
    agent.destroy();
    for (const s of servers) await s.close(100);
    await fake.close();
  }
}

/** The realistic plan: each load against proxies that learn the limits, then against configured ones. */
async function plan(engine: DynamoEngine): Promise<void> {
  const rows: Array<Record<string, unknown>> = [];
  let run = 0;
  for (const [i, load] of [0.9, 1.5].entries()) {
    for (const limits of ['learned', 'configured'] as const) {
      run++;
      // Both configurations get the same arrivals (seed) at a load; each run its own names (tag).
      const report = await runPlan({ limits, load, seconds: SECONDS, engine, tag: `r${run}`, seed: i + 1 });
      process.stdout.write(`${JSON.stringify(report)}\n`);
      rows.push(report);
    }
  }
  const pick = (r: Record<string, unknown>) => ({
    success_pct: r.client_success_pct,
    fifo_oracle_success_pct: r.fifo_oracle_success_pct,
    goodput_pct_of_plan: r.goodput_pct_of_plan,
    gemini_429: r.gemini_429,
    gemini_429_after_learning: r.gemini_429_after_learning,
    refused_without_gemini_call_pct: r.refused_without_gemini_call_pct,
    pro_model_unavailable: r.pro_model_unavailable,
    sync_round_trips_steady: r.dynamodb_sync_round_trips_per_request_steady,
    acquires_per_request_max: r.acquires_per_request_max,
    local_acquires_per_request: r.local_acquires_per_request,
    async_calls: r.dynamodb_async_calls_per_request,
    success_ms: r.success_ms,
    targets: r.targets,
  });
  const summary: Record<string, Record<string, unknown>> = {};
  for (const r of rows) {
    const key = `${r.offered_pct_of_capacity}%`;
    summary[key] = { ...summary[key], [String(r.limits)]: pick(r) };
  }
  process.stdout.write(`${JSON.stringify({ bench: 'quota-plan-summary', ...summary })}\n`);
}

let dynalite: ChildProcess | undefined;
if (!process.env.DYNAMODB_ENDPOINT && process.env.BENCH_DYNALITE !== 'inprocess') {
  const started = await startChild('test/bench/dynalite-process.ts', {}, (l) => l.startsWith('{"port"'));
  dynalite = started.child;
  process.env.DYNAMODB_ENDPOINT = `http://127.0.0.1:${(JSON.parse(started.line) as { port: number }).port}`;
}
try {
  const engine = await startDynamoEngine();
  try {
    if (ONLY !== 'plan') await proactive(engine);
    if (ONLY !== 'proactive') await plan(engine);
  } finally {
    await engine.close();
  }
} finally {
  dynalite?.kill('SIGTERM');
}
