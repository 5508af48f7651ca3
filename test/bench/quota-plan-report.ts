/** The report of one run of the realistic plan (`quota-plan.ts`): one JSON object, targets included. */
import type { QuotaRefusal } from '../support/fake-gemini.js';
import { type CallTracer, roundTrips, SYNC_KINDS, type TracedCall } from './dynamo-calls.js';
import type { CountingLogger, PlanRun } from './quota-plan.js';
import {
  type Arrival,
  FLASH,
  fifoOracleServed,
  geminiTokens,
  PRO,
  planCapacity,
  WINDOW_MS,
} from './quota-plan-spec.js';

/** Requests sent in the first windows meet limits not yet learned: steady state starts after them. */
const LEARNING_WINDOWS = 2;
/** Client success % required at 90 % of capacity. */
const SUCCESS_TARGET_PCT = 99.5;

/** One client request and its answer. */
export interface Outcome {
  readonly id: string;
  readonly arrival: Arrival;
  /** Epoch ms when sent, and when answered. */
  readonly sentAt: number;
  readonly endAt: number;
  readonly status: number;
  readonly ms: number;
  /** The proxy's `x-upstream-attempts`: Gemini calls made for the request. */
  readonly attempts: number;
  /** The error's `code` (or `type`) for an answer other than 200. */
  readonly code: string | undefined;
}

export interface Observed {
  readonly outcomes: readonly Outcome[];
  readonly arrivals: readonly Arrival[];
  /** Epoch ms of the first arrival (a window boundary). */
  readonly startEpoch: number;
  readonly refusals: readonly QuotaRefusal[];
  readonly geminiCalls: number;
  readonly tracer: CallTracer;
  readonly logger: CountingLogger;
  /** The bench process's event-loop delay during the run (proxies, fake Gemini and dynalite share it). */
  readonly loopDelayMs: { p50: number; p99: number; max: number };
}

const r2 = (x: number) => Math.round(x * 100) / 100;
const pct = (n: number, d: number) => (d === 0 ? null : r2((100 * n) / d));
const mean = (xs: readonly number[]) => (xs.length === 0 ? 0 : xs.reduce((a, b) => a + b, 0) / xs.length);
const quantile = (xs: readonly number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? 0;
};
const tally = <T>(xs: readonly T[], key: (x: T) => string) => {
  const out: Record<string, number> = {};
  for (const x of xs) out[key(x)] = (out[key(x)] ?? 0) + 1;
  return out;
};

/** Percentiles and extremes of a list (null when empty). */
function spread(xs: readonly number[]) {
  if (xs.length === 0) return null;
  const q = (p: number) => Math.round(quantile(xs, p));
  return {
    n: xs.length,
    min: q(0),
    p50: q(0.5),
    p90: q(0.9),
    p99: q(0.99),
    max: Math.round(Math.max(...xs)),
  };
}

/** Gemini's 429s per (project, model, metric, window), split into learning and after learning. */
function geminiRefusals(refusals: readonly QuotaRefusal[], tag: string, firstWindow: number) {
  interface Cell {
    triple: string;
    window: number;
    n: number;
    ms: number[];
  }
  const tripleOf = (r: QuotaRefusal, metric: string) =>
    `${r.project.replace(`${tag}-`, '')} ${r.model.replace('gemini-2.5-', '')} ${metric}`;
  const cells = new Map<string, Cell>();
  const firstOf = new Map<string, number>();
  const byWindow: number[] = [];
  for (const r of refusals) {
    const w = r.window - firstWindow;
    byWindow[w] = (byWindow[w] ?? 0) + 1;
    for (const metric of r.metrics) {
      const triple = tripleOf(r, metric);
      const cell = cells.get(`${triple} w${w}`) ?? { triple, window: w, n: 0, ms: [] };
      cell.n++;
      // Where in its window the 429 came: near 0, a claim made at the end of the previous window
      // reached Gemini in the next one.
      cell.ms.push(Math.round(r.at - r.window * WINDOW_MS));
      cells.set(`${triple} w${w}`, cell);
      firstOf.set(triple, Math.min(firstOf.get(triple) ?? Infinity, w));
    }
  }
  const name = (c: Cell) => `${c.triple} w${c.window}×${c.n}`;
  // A triple's first window with a 429 is where its limit is learned (limit 0: its keys parked).
  const learning = [...cells.values()].filter((c) => firstOf.get(c.triple) === c.window);
  const after = [...cells.values()].filter((c) => firstOf.get(c.triple) !== c.window);
  // A 429 taught something if one of its metrics was in its learning window; else it came after.
  const taught = (r: QuotaRefusal) =>
    r.metrics.some((m) => firstOf.get(tripleOf(r, m)) === r.window - firstWindow);
  return {
    gemini_429: refusals.length,
    gemini_429_by_window: Array.from(byWindow, (n) => n ?? 0),
    gemini_429_learning: refusals.filter(taught).length,
    gemini_429_learning_cells: learning.map(name).sort(),
    gemini_429_after_learning: refusals.filter((r) => !taught(r)).length,
    gemini_429_after_learning_max_per_cell: Math.max(0, ...after.map((c) => c.n)),
    gemini_429_after_learning_cells: after.map(name).sort(),
    gemini_429_after_learning_ms_into_window: spread(after.flatMap((c) => c.ms)),
  };
}

/** DynamoDB calls per request: synchronous round trips (calls sent together count once), async calls. */
function dynamoCalls(outcomes: readonly Outcome[], steady: readonly Outcome[], tracer: CallTracer) {
  const traceOf = (x: Outcome) => tracer.requests.get(x.id);
  const callsOf = (x: Outcome) => traceOf(x)?.calls ?? [];
  const isSync = (c: TracedCall) => SYNC_KINDS.has(c.kind);
  // On AWS a lost conditional write returns the item it lost to: no GetItem follows it.
  const isSyncOnAws = (c: TracedCall) => isSync(c) && c.kind !== 'claim_conflict_read';
  const trips = (xs: readonly Outcome[], pick = isSync) =>
    r2(mean(xs.map((x) => roundTrips(callsOf(x).filter(pick)))));
  const calls = (xs: readonly Outcome[], pick: (c: TracedCall) => boolean) =>
    r2(mean(xs.map((x) => callsOf(x).filter(pick).length)));
  // Served at the first ask (the hot path) vs asked again after a wait for a window, or a 429.
  const firstAsk = steady.filter((x) => traceOf(x)?.acquires === 1);
  const askedAgain = steady.filter((x) => (traceOf(x)?.acquires ?? 0) > 1);
  const all = outcomes.flatMap(callsOf);
  const byKind: Record<string, number> = {};
  for (const [kind, n] of Object.entries(tally(all, (c) => c.kind))) byKind[kind] = r2(n / outcomes.length);
  const ms: Record<string, string> = {};
  for (const kind of new Set(all.map((c) => c.kind))) {
    const xs = all.filter((c) => c.kind === kind).map((c) => c.end - c.start);
    ms[kind] = `${Math.round(quantile(xs, 0.5))}/${Math.round(quantile(xs, 0.99))}`;
  }
  const acquires = outcomes.map((x) => traceOf(x)?.acquires ?? 0);
  // The commonest sequences of synchronous calls in steady state ("+" joins calls sent together; a claim
  // that starts a new window is `claim(new)`, one DynamoDB refused ends in `✗`).
  const sequence = (x: Outcome) => {
    const sync = callsOf(x)
      .filter(isSync)
      .sort((a, b) => a.start - b.start);
    const steps: string[] = [];
    let until = -Infinity;
    for (const c of sync) {
      const label = `${c.kind}${c.newWindow ? '(new)' : ''}${c.failed ? '✗' : ''}`;
      if (c.start >= until) steps.push(label);
      else steps[steps.length - 1] += `+${label}`;
      until = Math.max(until, c.end);
    }
    return `${traceOf(x)?.acquires ?? 0} ask: ${steps.join(' > ') || '-'}`;
  };
  const sequences = Object.entries(tally(steady, sequence))
    .sort((a, b) => b[1] - a[1])
    .slice(0, 6);
  return {
    steadyTrips: trips(steady),
    report: {
      acquires_per_request: r2(mean(acquires)),
      acquires_per_request_max: Math.max(0, ...acquires),
      local_acquires_per_request: r2(mean(outcomes.map((x) => traceOf(x)?.localAcquires ?? 0))),
      dynamodb_sync_calls_per_request: calls(outcomes, isSync),
      dynamodb_sync_round_trips_per_request: trips(outcomes),
      // Steady state: all requests; on AWS (no GetItem after a lost claim); those served or refused at
      // their first ask (the hot path); those that asked again (after waiting for a window, or a 429).
      dynamodb_sync_round_trips_per_request_steady: {
        all: trips(steady),
        on_aws: trips(steady, isSyncOnAws),
        first_ask: trips(firstAsk),
        first_ask_on_aws: trips(firstAsk, isSyncOnAws),
        asked_again: trips(askedAgain),
        requests_first_ask: firstAsk.length,
        requests_asked_again: askedAgain.length,
      },
      dynamodb_sync_sequences_steady_top: Object.fromEntries(sequences),
      dynamodb_async_calls_per_request: calls(outcomes, (c) => !isSync(c)),
      dynamodb_calls_per_request_by_kind: byKind,
      dynamodb_calls_outside_requests: tally(tracer.unattributed, (c) => c.kind),
      dynamodb_call_ms_p50_p99_by_kind: ms,
    },
  };
}

export function report(
  run: Pick<PlanRun, 'limits' | 'load' | 'seconds' | 'tag'>,
  o: Observed,
): Record<string, unknown> {
  const { outcomes, startEpoch } = o;
  const firstWindow = Math.floor(startEpoch / WINDOW_MS);
  const offerEnd = startEpoch + run.seconds * 1000;
  const windows = (run.seconds * 1000) / WINDOW_MS;
  const ok = outcomes.filter((x) => x.status === 200);
  const failed = outcomes.filter((x) => x.status !== 200);
  const ofModel = (xs: readonly Outcome[], m: string) => xs.filter((x) => x.arrival.model === m);

  // Goodput: successes answered within the offer's windows, over what the plan allows in those windows
  // (planCapacity) for prompts of the mean size (Gemini's count) of those successes.
  const goodput = (xs: readonly Outcome[], models: readonly string[]) => {
    const inOffer = xs.filter((x) => x.status === 200 && x.endAt <= offerEnd);
    let capacity = 0;
    for (const m of models) {
      const mine = ofModel(inOffer, m);
      capacity += planCapacity(m, mean(mine.map((x) => geminiTokens(x.arrival.tokens))), windows);
    }
    return pct(inOffer.length, capacity);
  };
  const models = Object.fromEntries(
    [FLASH, PRO].map((m) => {
      const xs = ofModel(outcomes, m);
      return [
        m.replace('gemini-2.5-', ''),
        {
          requests: xs.length,
          served: xs.filter((x) => x.status === 200).length,
          fifo_oracle_served: fifoOracleServed(o.arrivals.filter((a) => a.model === m)),
          refused: tally(
            xs.filter((x) => x.status !== 200),
            (x) => `${x.status} ${x.code}`,
          ),
          goodput_pct_of_plan: goodput(xs, [m]),
        },
      ];
    }),
  );

  const steady = outcomes.filter((x) => Math.floor(x.sentAt / WINDOW_MS) - firstWindow >= LEARNING_WINDOWS);
  const dynamo = dynamoCalls(outcomes, steady, o.tracer);
  const gemini = geminiRefusals(o.refusals, run.tag, firstWindow);
  const success = pct(ok.length, outcomes.length) ?? 0;
  const oracle = pct(fifoOracleServed(o.arrivals), o.arrivals.length);
  return {
    bench: 'quota-plan',
    limits: run.limits,
    offered_pct_of_capacity: run.load * 100,
    seconds: run.seconds,
    window_ms: WINDOW_MS,
    requests: outcomes.length,
    client_success_pct: success,
    fifo_oracle_success_pct: oracle,
    goodput_pct_of_plan: goodput(outcomes, [FLASH, PRO]),
    models,
    pro_model_unavailable: ofModel(outcomes, PRO).filter((x) => x.code === 'model_unavailable').length,
    refused: failed.length,
    refused_without_gemini_call_pct: pct(failed.filter((x) => x.attempts === 0).length, failed.length),
    gemini_calls: o.geminiCalls,
    ...gemini,
    ...dynamo.report,
    success_ms: spread(ok.map((x) => x.ms)),
    refused_ms: spread(failed.map((x) => x.ms)),
    event_loop_delay_ms: {
      p50: r2(o.loopDelayMs.p50),
      p99: r2(o.loopDelayMs.p99),
      max: r2(o.loopDelayMs.max),
    },
    proxy_warnings: Object.fromEntries(o.logger.counts),
    proxy_warning_samples: o.logger.samples,
    targets: {
      ...(run.load <= 0.9 ? { success_ge_99_5_pct: success >= SUCCESS_TARGET_PCT ? 'pass' : 'FAIL' } : {}),
      after_learning_le_1_gemini_429_per_window:
        gemini.gemini_429_after_learning_max_per_cell <= 1 ? 'pass' : 'FAIL',
      sync_round_trips_le_1_per_request_steady: dynamo.steadyTrips <= 1 ? 'pass' : 'FAIL',
    },
  };
}
