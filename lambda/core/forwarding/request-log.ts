/** The end of every request, forwarded or refused: its log line and its metrics, built in one place. */
import type { Caller } from '../credentials.js';
import type { ProxyRequest } from '../http.js';
import type { Logger } from '../logger.js';
import type { MetricsSink, RequestMetrics } from '../metrics.js';
import type { UsageLedger } from '../usage-ledger.js';

/** What a forwarded request did at Gemini, as its log line and metrics tell it. */
export interface ForwardFacts {
  /** Gemini calls made (0: refused without calling Gemini). */
  readonly count: number;
  readonly retries: number;
  readonly upstreamErrors: RequestMetrics['upstreamErrors'];
  readonly keyCooldowns: number;
  readonly timeToFirstByteMs?: number | undefined;
  readonly refusal?: RequestMetrics['refusal'];
  readonly tokens?: { readonly input: number; readonly output: number } | undefined;
  /** Keys parked, limits learned, and the budget limit behind a quota refusal (see `RequestMetrics`). */
  readonly parks?: number;
  readonly limitsLearned?: number;
  readonly budgetRefusal?: RequestMetrics['budgetRefusal'];
  /** The group and key of the last call. */
  readonly group?: string | undefined;
  readonly keyId?: string | undefined;
}

/** Gemini calls a request made, as counted in its log line and metrics. */
export type CallCounts = Pick<
  ForwardFacts,
  'count' | 'retries' | 'upstreamErrors' | 'keyCooldowns' | 'parks' | 'limitsLearned'
>;

/** A forwarded request as its log line names it. */
export interface ForwardedRequest {
  readonly request: ProxyRequest;
  readonly started: number;
  /** The model whose answer the client gets. */
  readonly model: string;
  /** The client's model, when the answer is another model's (a fallback). */
  readonly fallbackFrom?: string | undefined;
  /** Calls made for the other models of a fallback chain, counted with this model's. */
  readonly earlier?: CallCounts | undefined;
  /** The client whose token the request carried (none when the proxy runs without tokens). */
  readonly caller?: Caller | undefined;
}

interface Forwarded {
  readonly model: string;
  readonly fallbackFrom: string | undefined;
  readonly caller: Caller | undefined;
  readonly facts: ForwardFacts;
  readonly streamError: string | undefined;
}

/** Two counts of Gemini calls, added up. */
export function addCalls(a: CallCounts, b: CallCounts): CallCounts {
  const [e, f] = [a.upstreamErrors, b.upstreamErrors];
  return {
    count: a.count + b.count,
    retries: a.retries + b.retries,
    upstreamErrors: {
      transient: e.transient + f.transient,
      quota: e.quota + f.quota,
      deadKey: e.deadKey + f.deadKey,
    },
    keyCooldowns: a.keyCooldowns + b.keyCooldowns,
    parks: (a.parks ?? 0) + (b.parks ?? 0),
    limitsLearned: (a.limitsLearned ?? 0) + (b.limitsLearned ?? 0),
  };
}

interface RequestLogDeps {
  readonly logger: Logger;
  readonly metrics: MetricsSink;
  readonly now: () => number;
  /** Upstream circuits open on this instance, recorded with each forwarded request. */
  readonly openCircuits: () => number;
  /** Where each forwarded request is counted. @default none */
  readonly usage?: UsageLedger | undefined;
}

/**
 * Each request's end: one `request` log line and one metrics record, built here alike for a request the
 * proxy refused before forwarding it (route, token, body, model) and one that went to the forwarder.
 */
export class RequestLog {
  constructor(private readonly deps: RequestLogDeps) {}

  /** A request answered without going to the forwarder: no Gemini call, no group. */
  refused(request: ProxyRequest, started: number, status: number): void {
    this.write(request, started, status, undefined);
  }

  /**
   * A forwarded request, once it is answered (a relayed stream: once the stream ends, `streamError`
   * saying why if it ended early). Counted in the usage ledger as well.
   */
  forwarded(job: ForwardedRequest, status: number, facts: ForwardFacts, streamError?: string): void {
    this.write(job.request, job.started, status, {
      model: job.model,
      fallbackFrom: job.fallbackFrom,
      caller: job.caller,
      // The calls made for the other models of a fallback chain count too.
      facts: job.earlier === undefined ? facts : { ...facts, ...addCalls(facts, job.earlier) },
      streamError,
    });
    // Counted under the model that answered (a fallback's), like the log line's `model`.
    this.deps.usage?.add({
      at: this.deps.now(),
      client: job.caller,
      keyId: facts.keyId,
      model: job.model,
      status,
      streamError,
      tokens: facts.tokens,
    });
  }

  private write(request: ProxyRequest, started: number, status: number, sent: Forwarded | undefined): void {
    const facts = sent?.facts;
    const latencyMs = this.deps.now() - started;
    this.deps.logger.info('request', {
      requestId: request.requestId,
      method: request.method,
      path: request.path,
      status,
      latencyMs,
      ...(sent && {
        client: sent.caller?.name ?? sent.caller?.clientId,
        attempts: sent.facts.count,
        group: sent.facts.group,
        keyId: sent.facts.keyId,
        model: sent.model,
        fallbackFrom: sent.fallbackFrom,
        streamError: sent.streamError,
        inputTokens: sent.facts.tokens?.input,
        outputTokens: sent.facts.tokens?.output,
        refusal: sent.facts.refusal,
        budgetRefusal: sent.facts.budgetRefusal,
      }),
    });
    this.deps.metrics.record({
      group: facts?.group ?? '',
      model: sent?.model,
      status,
      latencyMs,
      timeToFirstByteMs: facts?.timeToFirstByteMs,
      attempts: facts?.count ?? 0,
      retries: facts?.retries ?? 0,
      upstreamErrors: facts?.upstreamErrors ?? { transient: 0, quota: 0, deadKey: 0 },
      keyCooldowns: facts?.keyCooldowns ?? 0,
      refusal: facts?.refusal,
      ...(facts && {
        inputTokens: facts.tokens?.input,
        outputTokens: facts.tokens?.output,
        openCircuits: this.deps.openCircuits(),
        unavailableParks: facts.parks,
        limitsLearned: facts.limitsLearned,
        budgetRefusal: facts.budgetRefusal,
      }),
      fallback: sent?.fallbackFrom !== undefined && status < 400,
    });
  }
}
