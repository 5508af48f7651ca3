import { setTimeout as sleep } from 'node:timers/promises';
import { readText } from './body.js';
import { stateWaitAllowanceMs } from './config/derived.js';
import type { ProxyConfig } from './config/schema.js';
import { RequestDeadline } from './deadline.js';
import { classifyUpstreamResponse, type UpstreamOutcome } from './gemini-errors.js';
import { clientResponseHeaders, headerValue, upstreamRequestHeaders } from './headers.js';
import {
  type BodyStream,
  type ProxyRequest,
  type ProxyResponse,
  type UpstreamClient,
  UpstreamError,
  type UpstreamResponse,
} from './http.js';
import type {
  AcquireRequest,
  Acquisition,
  ClientLimit,
  KeyRef,
  KeyStateStore,
  KeyStateUpdate,
  QuotaLimits,
} from './key-state.js';
import type { Logger } from './logger.js';
import type { MetricsSink, RequestMetrics } from './metrics.js';
import { openAiError, sseErrorEvent } from './openai-errors.js';
import { decide } from './policy.js';
import {
  cancelled,
  circuitOpen,
  clientLimited,
  keysExhausted,
  networkFailure,
  stateUnavailable,
} from './refusals.js';
import type { Scrubber } from './secrets.js';
import type { StateWrites } from './state-writes.js';
import { upstreamErrorAnswer } from './upstream-errors.js';
import type { UpstreamHealth } from './upstream-health.js';
import { UsageTail } from './usage.js';

/** A configured group with its keys resolved: id → raw key, ids in rotation order. */
export interface KeyGroup {
  readonly name: string;
  readonly targetUrl: string;
  readonly models: ReadonlySet<string> | undefined;
  readonly keys: ReadonlyMap<string, string>;
  /** Keys in rotation order with their quota budgets. */
  readonly refs: readonly KeyRef[];
  readonly keyIds: readonly string[];
  readonly limits: QuotaLimits | undefined;
}

export type Target =
  | { readonly kind: 'openai'; readonly rest: string; readonly query: string }
  | { readonly kind: 'native'; readonly url: string; readonly query: string };

export interface ForwardJob {
  readonly request: ProxyRequest;
  readonly body: Uint8Array;
  readonly model: string;
  readonly target: Target;
  readonly groups: readonly KeyGroup[];
  readonly started: number;
  /** The client's per-minute limit, if it has one. */
  readonly client: ClientLimit | undefined;
  /** A generation call, answered as a stream or whole; undefined for anything else (listing, embeddings…). */
  readonly generation: 'streamed' | 'whole' | undefined;
}

interface ForwarderDeps {
  readonly config: ProxyConfig;
  readonly store: KeyStateStore;
  readonly upstream: UpstreamClient;
  readonly logger: Logger;
  readonly now: () => number;
  readonly scrubber: Scrubber;
  readonly metrics: MetricsSink;
  /** Circuits and health scores: the instance's, surviving a change of configuration. */
  readonly health: UpstreamHealth;
  readonly writes: StateWrites;
}

/** Per-request bookkeeping shared by the attempt loop and the final log line. */
interface Attempts {
  count: number;
  /** For metrics: what happened on the way. */
  retries: number;
  upstreamErrors: { transient: number; quota: number; deadKey: number };
  keyCooldowns: number;
  timeToFirstByteMs?: number | undefined;
  refusal?: RequestMetrics['refusal'];
  tokens?: { input: number; output: number } | undefined;
  /** What is left of this request's allowance for waiting on shared state. */
  stateWaitMs: number;
  readonly deadline: RequestDeadline;
  group?: string | undefined;
  keyId?: string | undefined;
  /** The last transient failure, answered if no key succeeds. */
  lastFailure?: ProxyResponse | undefined;
  /** Soonest end of a quota cooldown this request caused, for Retry-After if attempts run out. */
  quotaRetryAt?: number | undefined;
  /** A generation call of this request already timed out waiting for Gemini's headers. */
  slow: boolean;
  /** Keys that answered this request 500: a second one shows the failure follows the request. */
  readonly internalErrors: Set<string>;
}

type KeyResult = { readonly answer: ProxyResponse } | { readonly rotate: true };

const encoder = new TextEncoder();
/** How many Gemini calls the answer took (0: refused without calling Gemini). */
export const ATTEMPTS_HEADER = 'x-upstream-attempts';
const BODYLESS = new Set(['GET', 'HEAD']);

/**
 * Thrown by a relayed body that is not SSE when it fails midway (upstream error or the deadline): the
 * entry cuts the response (its name is what Lambda's runtime reports as the error type).
 */
export class BodyCutError extends Error {
  constructor(
    readonly why: 'deadline' | 'upstream_failed',
    cause: unknown,
  ) {
    super(
      why === 'deadline'
        ? 'The answer was cut off at the proxy request deadline.'
        : 'The upstream answer failed before it completed.',
      { cause },
    );
    this.name = 'BodyCutError';
  }
}

/** The attempt loop: select a key, call Gemini, classify, record, retry or rotate, answer. */
export class Forwarder {
  constructor(private readonly deps: ForwarderDeps) {}

  async forward(job: ForwardJob): Promise<ProxyResponse> {
    const { request } = job;
    const timeoutMs = Math.min(
      this.deps.config.upstream.request_timeout_ms,
      request.deadlineAt === undefined
        ? Number.POSITIVE_INFINITY
        : Math.max(0, request.deadlineAt - this.deps.now()),
    );
    const deadline = new RequestDeadline(request.signal, timeoutMs);
    const state: Attempts = {
      count: 0,
      retries: 0,
      upstreamErrors: { transient: 0, quota: 0, deadKey: 0 },
      keyCooldowns: 0,
      deadline,
      stateWaitMs: stateWaitAllowanceMs(this.deps.config.state),
      slow: false,
      internalErrors: new Set(),
    };
    try {
      return await this.attempt(job, state);
    } catch (err) {
      deadline.dispose();
      throw err;
    }
  }

  /** Tries groups and keys until one answers, the attempts run out, or every key is cooling. */
  private async attempt(job: ForwardJob, state: Attempts): Promise<ProxyResponse> {
    const { config, now } = this.deps;
    const signal = state.deadline.signal;
    let waitedMs = 0;
    let clientCounted = false;
    let quotaBlocked = false;
    let circuitRetryAt: number | undefined;
    /** A group's budget claim that shared state could not take: another group may still serve. */
    let stateRetryAt: number | undefined;
    for (;;) {
      const exclude = new Set<string>();
      let soonest: number | undefined;
      for (const group of job.groups) {
        while (state.count < config.policy.max_attempts) {
          // Checked before every key: a circuit this request's own failures opened stops it too.
          const admission = this.deps.health.admit(this.targetOf(job, group));
          if (!admission.admitted) {
            // Gemini at this target keeps failing: don't spend a key on it; another group may serve.
            circuitRetryAt = Math.min(circuitRetryAt ?? Infinity, admission.retryAt);
            break;
          }
          // The client's own limit is counted once per request, with its first acquisition.
          const client = clientCounted ? undefined : job.client;
          const acquisition = await this.acquire(state, {
            group: group.name,
            keys: group.refs,
            model: job.model,
            now: now(),
            exclude,
            limits: group.limits,
            client,
            health: this.deps.health.selection,
          });
          clientCounted = true;
          if (acquisition.kind === 'client_limited') {
            state.refusal = 'client_rate_limited';
            return this.finish(job, state, clientLimited(acquisition.retryAt - now()));
          }
          if (acquisition.kind === 'state_unavailable') {
            // The client's own limit could not be counted: refuse. Only a group's budget: try the next group.
            if (client !== undefined) {
              state.refusal = 'state_unavailable';
              return this.finish(job, state, stateUnavailable(acquisition.retryAt - now()));
            }
            stateRetryAt = Math.min(stateRetryAt ?? Infinity, acquisition.retryAt);
            break;
          }
          if (acquisition.kind === 'unavailable') {
            if (acquisition.retryAt !== undefined) {
              soonest = Math.min(soonest ?? Infinity, acquisition.retryAt);
              if (acquisition.cause === 'quota') quotaBlocked = true;
            }
            break;
          }
          exclude.add(acquisition.keyId);
          state.group = group.name;
          state.keyId = acquisition.keyId;
          const result = await this.tryKey(job, group, acquisition.keyId, state, signal);
          if ('answer' in result) return result.answer;
        }
      }
      if (signal.aborted) return this.finish(job, state, cancelled(job.request.signal.aborted));
      if (state.lastFailure !== undefined) return this.finish(job, state, state.lastFailure);
      if (state.count >= config.policy.max_attempts) {
        if (state.quotaRetryAt !== undefined) {
          state.refusal = 'keys_exhausted';
          return this.finish(job, state, keysExhausted(state.quotaRetryAt - now()));
        }
        return this.finish(job, state, openAiError(503, 'No key could serve this request.', 'server_error'));
      }
      // A key this request cooled is cooling even if the store has not taken the write in yet.
      if (state.quotaRetryAt !== undefined) soonest = Math.min(soonest ?? Infinity, state.quotaRetryAt);
      if (soonest === undefined && stateRetryAt !== undefined) {
        state.refusal = 'state_unavailable';
        return this.finish(job, state, stateUnavailable(stateRetryAt - now()));
      }
      if (soonest === undefined && circuitRetryAt !== undefined) {
        state.refusal = 'circuit_open';
        return this.finish(job, state, circuitOpen(circuitRetryAt - now()));
      }
      if (soonest === undefined) {
        return this.finish(
          job,
          state,
          openAiError(
            503,
            'No usable Gemini API key is configured for this model.',
            'server_error',
            'no_usable_keys',
          ),
        );
      }
      const wait = Math.max(1, soonest - now());
      if (waitedMs + wait <= config.policy.max_wait_ms) {
        waitedMs += wait;
        if (await sleep(wait, true, { signal }).catch(() => false)) continue;
        return this.finish(job, state, cancelled(job.request.signal.aborted));
      }
      state.refusal = 'keys_exhausted';
      return this.finish(job, state, keysExhausted(wait, quotaBlocked));
    }
  }

  /** Calls upstream with one key, retrying it on transient errors; answers or asks to rotate. */
  private async tryKey(
    job: ForwardJob,
    group: KeyGroup,
    keyId: string,
    state: Attempts,
    signal: AbortSignal,
  ): Promise<KeyResult> {
    const { config, now, logger, health } = this.deps;
    const target = this.targetOf(job, group);
    for (let retries = 0; ; retries++) {
      state.count++;
      const sent = now();
      let outcome: UpstreamOutcome;
      let answer: ProxyResponse;
      try {
        const response = await this.deps.upstream.send(this.upstreamRequest(job, group, keyId, signal));
        state.timeToFirstByteMs = now() - sent;
        // Any answer but a transient failure shows the target is up (429s and 4xx included).
        if (response.status === 500 || response.status === 502 || response.status === 503) {
          health.failed(target, keyId, job.request.requestId);
        } else {
          health.answered(target, keyId, response.status < 400 ? state.timeToFirstByteMs : undefined);
        }
        if (response.status < 400) {
          this.record({
            kind: 'success',
            group: group.name,
            keyId,
            model: job.model,
            latencyMs: now() - sent,
          });
          return { answer: this.relay(job, state, response, signal) };
        }
        const text = await readText(response.body);
        outcome = classifyUpstreamResponse(response.status, text ?? '');
        if (outcome.kind === 'internal') {
          const elsewhere = [...state.internalErrors].some((other) => other !== keyId);
          state.internalErrors.add(keyId);
          outcome = { kind: 'internal', repeated: elsewhere };
        }
        answer = upstreamErrorAnswer(job.target.kind, response, text, this.deps.scrubber, now());
      } catch (err) {
        if (signal.aborted) return { answer: this.finish(job, state, cancelled(job.request.signal.aborted)) };
        answer = networkFailure(err);
        if (
          job.generation !== undefined &&
          err instanceof UpstreamError &&
          err.kind === 'first_byte_timeout'
        ) {
          // Gemini got the call and is slow with it: that says nothing about the key or the target.
          outcome = { kind: 'slow', resent: state.slow };
          state.slow = true;
        } else {
          health.unreachable(target, job.request.requestId);
          outcome = { kind: 'transient' };
        }
      }
      const failed = outcome.kind === 'transient' || outcome.kind === 'slow' || outcome.kind === 'internal';
      if (failed) state.upstreamErrors.transient++;
      else if (outcome.kind === 'quota') state.upstreamErrors.quota++;
      else if (outcome.kind === 'dead_key') {
        health.deadKey(keyId);
        state.upstreamErrors.deadKey++;
      }
      const decision = decide(outcome, retries, now(), config.policy);
      logger.debug('upstream attempt', {
        requestId: job.request.requestId,
        attempt: state.count,
        group: group.name,
        keyId,
        model: job.model,
        status: answer.status,
        outcome: outcome.kind,
        action: decision.action,
      });
      switch (decision.action) {
        case 'answer':
          return { answer: this.finish(job, state, answer) };
        case 'retry_same_key':
          if (!health.admit(target).admitted || state.count >= config.policy.max_attempts) {
            // This request's own failures opened the circuit, or its attempts are spent.
            state.lastFailure = answer;
            return { rotate: true };
          }
          state.retries++;
          if (!(await sleep(decision.delayMs, true, { signal }).catch(() => false))) {
            return { answer: this.finish(job, state, cancelled(job.request.signal.aborted)) };
          }
          if (group.limits !== undefined) {
            // Every Gemini call spends budget, retries included: claim this key's budget again.
            const ref = group.refs.find((r) => r.keyId === keyId)!;
            const again = await this.acquire(state, {
              group: group.name,
              keys: [ref],
              model: job.model,
              now: now(),
              exclude: new Set(),
              limits: group.limits,
              retry: true,
            });
            if (again.kind !== 'key') {
              state.lastFailure = answer;
              return { rotate: true };
            }
          }
          continue;
        case 'cool_and_rotate':
          if (decision.cooldown !== undefined) {
            state.keyCooldowns++;
            this.record({
              kind: 'cooldown',
              group: group.name,
              keyId,
              model: job.model,
              cooldown: decision.cooldown,
            });
            logger.warn('key cooling', {
              requestId: job.request.requestId,
              group: group.name,
              keyId,
              model: job.model,
              cause: decision.cooldown.cause,
              coolMs: decision.cooldown.until - now(),
            });
          }
          // A quota refusal is not the client's answer: another key (or our own 429) will be.
          state.lastFailure = failed ? answer : undefined;
          if (outcome.kind === 'quota' && decision.cooldown !== undefined) {
            state.quotaRetryAt = Math.min(state.quotaRetryAt ?? Infinity, decision.cooldown.until);
          }
          return { rotate: true };
        case 'invalidate_and_rotate':
          this.record({ kind: 'invalid', group: group.name, keyId, reason: decision.reason });
          logger.warn('key invalid', {
            requestId: job.request.requestId,
            group: group.name,
            keyId,
            reason: decision.reason,
          });
          return { rotate: true };
      }
    }
  }

  /** The upstream a group's request goes to: the circuit breaker's unit. */
  private targetOf(job: ForwardJob, group: KeyGroup): string {
    return job.target.kind === 'openai' ? group.targetUrl : this.deps.config.upstream.native_base_url;
  }

  /** Asks the store for a key, charging the time spent to the request's allowance for shared state. */
  private async acquire(state: Attempts, request: AcquireRequest): Promise<Acquisition> {
    const started = this.deps.now();
    try {
      return await this.deps.store.acquire({ ...request, waitBudgetMs: state.stateWaitMs });
    } finally {
      state.stateWaitMs -= this.deps.now() - started;
    }
  }

  private upstreamRequest(job: ForwardJob, group: KeyGroup, keyId: string, signal: AbortSignal) {
    const { target, request } = job;
    const apiKey = group.keys.get(keyId)!;
    const headers = upstreamRequestHeaders(request.headers);
    let base: string;
    if (target.kind === 'openai') {
      base = `${group.targetUrl}${target.rest}`;
      headers.authorization = `Bearer ${apiKey}`;
    } else {
      base = target.url;
      headers['x-goog-api-key'] = apiKey;
    }
    const hasBody = !BODYLESS.has(request.method) && job.body.byteLength > 0;
    if (hasBody) headers['content-length'] = String(job.body.byteLength);
    return {
      url: new URL(target.query === '' ? base : `${base}?${target.query}`),
      method: request.method,
      headers,
      body: hasBody ? job.body : undefined,
      signal,
      connectTimeoutMs: this.deps.config.upstream.connect_timeout_ms,
      // Gemini sends a whole answer's headers only once the answer is done: minutes for thinking models.
      firstByteTimeoutMs:
        job.generation === 'whole'
          ? this.deps.config.upstream.generation_first_byte_timeout_ms
          : this.deps.config.upstream.first_byte_timeout_ms,
    };
  }

  /**
   * Streams a successful upstream body to the client chunk by chunk. A failure midway (upstream error or
   * the request deadline) ends an SSE stream with an in-band error event; a client that left gets nothing.
   */
  private relay(
    job: ForwardJob,
    state: Attempts,
    response: UpstreamResponse,
    signal: AbortSignal,
  ): ProxyResponse {
    const headers = clientResponseHeaders(response.headers);
    const sse = /^text\/event-stream/i.test(headerValue(response.headers, 'content-type') ?? '');
    const clientSignal = job.request.signal;
    const done = (streamError?: string) => this.logDone(job, state, response.status, streamError);
    const tokens = new UsageTail();
    async function* pass(body: BodyStream): AsyncGenerator<Uint8Array> {
      let outcome: string | undefined = 'client_gone';
      try {
        for await (const chunk of body) {
          tokens.see(chunk);
          yield chunk;
        }
        outcome = undefined;
        state.tokens = tokens.usage();
      } catch (err) {
        if (clientSignal.aborted) throw err;
        const why = signal.aborted ? 'deadline' : 'upstream_failed';
        outcome = why;
        // A body that isn't SSE can't say it failed: it is cut, so the client can't take it for whole.
        if (!sse) throw new BodyCutError(why, err);
        const message =
          outcome === 'deadline'
            ? 'The stream was cut off at the proxy request deadline.'
            : 'The upstream stream failed before it completed.';
        yield encoder.encode(
          sseErrorEvent(message, outcome === 'deadline' ? 'deadline_exceeded' : undefined),
        );
      } finally {
        // Also reached when the consumer stops early (client gone): then outcome is still 'client_gone'.
        state.deadline.dispose();
        done(outcome);
      }
    }
    headers[ATTEMPTS_HEADER] = String(state.count);
    return { status: response.status, headers, body: pass(response.body) };
  }

  private finish(job: ForwardJob, state: Attempts, answer: ProxyResponse): ProxyResponse {
    state.deadline.dispose();
    this.logDone(job, state, answer.status);
    answer.headers[ATTEMPTS_HEADER] = String(state.count);
    return answer;
  }

  private logDone(job: ForwardJob, state: Attempts, status: number, streamError?: string): void {
    this.deps.logger.info('request', {
      requestId: job.request.requestId,
      method: job.request.method,
      path: job.request.path,
      status,
      latencyMs: this.deps.now() - job.started,
      attempts: state.count,
      group: state.group,
      keyId: state.keyId,
      model: job.model,
      streamError,
      inputTokens: state.tokens?.input,
      outputTokens: state.tokens?.output,
    });
    this.deps.metrics.record({
      group: state.group ?? '',
      status,
      latencyMs: this.deps.now() - job.started,
      timeToFirstByteMs: state.timeToFirstByteMs,
      attempts: state.count,
      retries: state.retries,
      upstreamErrors: state.upstreamErrors,
      keyCooldowns: state.keyCooldowns,
      refusal: state.refusal,
      inputTokens: state.tokens?.input,
      outputTokens: state.tokens?.output,
      openCircuits: this.deps.health.openCircuits(),
    });
  }

  private record(update: KeyStateUpdate): void {
    this.deps.writes.record(update);
  }
}
