/**
 * The "realistic plan" scenario of `npm run bench:quota` (issue 11, "Quota intelligence"): the plan of
 * `quota-plan-spec.ts` (3 projects of 2–3 keys; flash 10 rpm / 250k tpm / 250 rpd each; pro limit 0 on
 * two projects and 5 rpm on the third; the fake's "minute" and the proxies' windows WINDOW_MS long), two
 * proxy instances on one DynamoDB engine, and an open-loop load: evenly spaced arrivals alternating
 * between the instances, each model at the same share of its capacity (pro every ~5th arrival), prompts
 * of 1k–200k tokens (log-uniform; 4 bytes a token, so up to 800 KB a body) from a seeded generator.
 *
 * Each run has projects, keys and a group of its own, so nothing learned or counted carries over.
 */
import http from 'node:http';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { onAnswer, stateClient } from '../../lambda/adapters/state/dynamodb/client.js';
import { DynamoDbKeyStateStore } from '../../lambda/adapters/state/dynamodb/store.js';
import { FallbackKeyStateStore } from '../../lambda/adapters/state/fallback-store.js';
import { MemoryKeyStateStore } from '../../lambda/adapters/state/memory-store.js';
import { parseConfig } from '../../lambda/core/config/parse.js';
import type { LogFields, Logger } from '../../lambda/core/logger.js';
import { type RunningServer, startLocalServer } from '../../lambda/local/server.js';
import type { DynamoEngine } from '../support/dynamo-engine.js';
import { startFakeGemini } from '../support/fake-gemini.js';
import { random } from '../support/random.js';
import { CallTracer } from './dynamo-calls.js';
import { type Outcome, report } from './quota-plan-report.js';
import {
  type Arrival,
  FLASH,
  FLASH_QUOTA,
  KEYS_PER_PROJECT,
  logUniformMean,
  MAX_TOKENS,
  MAX_WAIT_MS,
  MIN_TOKENS,
  PRO,
  PRO_PROJECT,
  PRO_QUOTA,
  planCapacity,
  quotaOf,
  TOKEN_FACTOR,
  WINDOW_MS,
} from './quota-plan-spec.js';

const TOKEN = 'bench-plan-token';

export interface PlanRun {
  /** `learned`: no limits configured (only the window length); `configured`: limits per model. */
  readonly limits: 'learned' | 'configured';
  /** Offered load as a share of the plan's capacity. */
  readonly load: number;
  readonly seconds: number;
  readonly engine: DynamoEngine;
  /** Names this run's projects, keys and group apart from the other runs'. */
  readonly tag: string;
  readonly seed: number;
}

/** A logger that keeps how often each warning and error was logged, and the fields of the first few. */
export class CountingLogger implements Logger {
  readonly counts = new Map<string, number>();
  readonly samples: Array<{ message: string } & LogFields> = [];
  debug(message: string, fields?: LogFields): void {
    // A Gemini call that failed other than by quota (a network error, a 5xx): worth seeing.
    if (fields?.outcome === 'transient' || fields?.outcome === 'internal')
      this.count(`debug: ${message}`, fields);
  }
  info(): void {}
  warn(message: string, fields?: LogFields): void {
    this.count(message, fields);
  }
  error(message: string, fields?: LogFields): void {
    this.count(`error: ${message}`, fields);
  }
  private count(message: string, fields: LogFields | undefined): void {
    const n = (this.counts.get(message) ?? 0) + 1;
    this.counts.set(message, n);
    if (n <= 2 && message !== 'key cooling') this.samples.push({ message, ...fields });
  }
}

function post(agent: http.Agent, port: number, id: string, arrival: Arrival): Promise<Outcome> {
  const { model, tokens } = arrival;
  const body = JSON.stringify({ model, messages: [{ role: 'user', content: 'x'.repeat(tokens * 4) }] });
  const started = performance.now();
  const sentAt = Date.now();
  const done = (status: number, attempts: number, code: string | undefined): Outcome => ({
    id,
    arrival,
    sentAt,
    endAt: Date.now(),
    status,
    ms: performance.now() - started,
    attempts,
    code,
  });
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
          'x-bench-id': id,
        },
      },
      (res) => {
        const parts: Buffer[] = [];
        res.on('data', (part: Buffer) => {
          if (res.statusCode !== 200) parts.push(part);
        });
        res.on('end', () => {
          let code: string | undefined;
          if (res.statusCode !== 200) {
            try {
              const text = Buffer.concat(parts).toString('utf8');
              const error = (JSON.parse(text) as { error?: Record<string, unknown> }).error;
              code = String(error?.code ?? error?.type ?? 'unknown');
            } catch {
              code = 'unparsable';
            }
          }
          resolve(done(res.statusCode ?? 0, Number(res.headers['x-upstream-attempts'] ?? -1), code));
        });
      },
    );
    req.on('error', () => resolve(done(0, -1, 'network')));
    req.end(body);
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The arrivals of a run: each model at `load` of its capacity (with the expected prompt mean). */
export function offer(load: number, seconds: number, seed: number): { arrivals: Arrival[]; rps: number } {
  const expectedMean = TOKEN_FACTOR * logUniformMean(MIN_TOKENS, MAX_TOKENS);
  const flash = planCapacity(FLASH, expectedMean, 1);
  const pro = planCapacity(PRO, expectedMean, 1);
  const rps = ((flash + pro) * 1000 * load) / WINDOW_MS;
  const rng = random(seed);
  // Pro takes its share of the arrivals evenly (every ~5th), so each model's count per window is steady;
  // the prompt sizes vary.
  const share = pro / (flash + pro);
  const arrivals = Array.from({ length: Math.round(rps * seconds) }, (_, i) => ({
    at: (i * 1000) / rps,
    model: Math.floor((i + 1) * share) > Math.floor(i * share) ? PRO : FLASH,
    tokens: Math.round(MIN_TOKENS * (MAX_TOKENS / MIN_TOKENS) ** rng.next()),
  }));
  return { arrivals, rps };
}

/** Runs one load against one configuration and returns its report (one JSON object). */
export async function runPlan(run: PlanRun): Promise<Record<string, unknown>> {
  const { engine, tag } = run;
  const projectName = (j: number) => `${tag}-p${j}`;
  const projects: Record<string, string[]> = {};
  const apiKeys: Array<{ key: string; project: string }> = [];
  KEYS_PER_PROJECT.forEach((n, j) => {
    const keys = Array.from({ length: n }, (_, i) => `bench-plan-${tag}-p${j}-k${i}`);
    projects[projectName(j)] = keys;
    for (const key of keys) apiKeys.push({ key, project: projectName(j) });
  });
  const fake = await startFakeGemini({ keys: apiKeys.map((k) => k.key) });
  fake.setPlan({
    projects,
    models: { [FLASH]: FLASH_QUOTA, [PRO]: PRO_QUOTA },
    projectModels: Object.fromEntries(
      KEYS_PER_PROJECT.flatMap((_, j) =>
        j === PRO_PROJECT ? [] : [[projectName(j), { [PRO]: quotaOf(j, PRO) }]],
      ),
    ),
    windowMs: WINDOW_MS,
    tokenFactor: TOKEN_FACTOR,
  });
  const limits =
    run.limits === 'learned'
      ? { rpm_window_ms: WINDOW_MS }
      : {
          default: { ...FLASH_QUOTA, rpm_window_ms: WINDOW_MS },
          models: { [PRO]: { ...PRO_QUOTA, rpm_window_ms: WINDOW_MS } },
        };
  const config = parseConfig({
    server: { host: '127.0.0.1', port: 0 },
    client_tokens: [TOKEN],
    groups: [{ name: `plan-${tag}`, api_keys: apiKeys, target_url: fake.openAiBase, limits }],
    upstream: { native_base_url: fake.url },
    policy: { max_wait_ms: MAX_WAIT_MS, transient_retry_delay_ms: 5 },
    state: { store: 'dynamodb', endpoint: engine.endpoint, table: engine.table },
  });

  // The stores as `createStateStore` builds them, their calls traced and acquisitions counted.
  const tracer = new CallTracer();
  const logger = new CountingLogger();
  const servers: RunningServer[] = [];
  for (let i = 0; i < 2; i++) {
    const client = stateClient(config.state);
    tracer.instrument(client);
    const shared = new DynamoDbKeyStateStore({
      client,
      table: config.state.table,
      cacheMs: config.state.cache_ms,
      rotationShards: config.state.rotation_shards,
    });
    const local = tracer.countAcquires(new MemoryKeyStateStore(), 'localAcquires');
    const store = new FallbackKeyStateStore(shared, local, {
      timeoutMs: config.state.timeout_ms,
      coldTimeoutMs: config.state.cold_timeout_ms,
      outageFailures: config.state.outage_failures,
      onOutage: config.state.on_outage,
      retryAfterMs: config.state.retry_after_ms,
      logger,
      answers: 'reported',
    });
    onAnswer(client, () => store.heard());
    const server = await startLocalServer({ config, logger, store: tracer.countAcquires(store) });
    tracer.attach(server.server);
    servers.push(server);
  }
  const ports = servers.map((s) => Number(new URL(s.url).port));
  const agent = new http.Agent({ keepAlive: true, maxSockets: 512 });
  const { arrivals } = offer(run.load, run.seconds, run.seed);

  let outcomes: Outcome[];
  let startEpoch: number;
  const loop = monitorEventLoopDelay({ resolution: 10 });
  try {
    // Start on a window boundary.
    await sleep(WINDOW_MS - (Date.now() % WINDOW_MS) + 5);
    loop.enable();
    startEpoch = Date.now();
    const started = performance.now();
    const inflight: Promise<Outcome>[] = [];
    for (const [i, arrival] of arrivals.entries()) {
      const wait = started + arrival.at - performance.now();
      if (wait > 1) await sleep(wait);
      inflight.push(post(agent, ports[i % ports.length]!, `${tag}-${i}`, arrival));
    }
    outcomes = await Promise.all(inflight);
    for (const s of servers) await s.proxy.settle();
  } finally {
    loop.disable();
    agent.destroy();
    for (const s of servers) await s.close(100);
    await fake.close();
  }
  return report(run, {
    outcomes,
    arrivals,
    startEpoch,
    refusals: fake.quotaRefusals,
    geminiCalls: fake.calls.length,
    tracer,
    logger,
    loopDelayMs: { p50: loop.percentile(50) / 1e6, p99: loop.percentile(99) / 1e6, max: loop.max / 1e6 },
  });
}
