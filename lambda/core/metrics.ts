/** What one request did, as numbers: the entry decides where they go (CloudWatch EMF on Lambda). */
export interface RequestMetrics {
  /** The group of the last Gemini call ('' when none was made); never a key. */
  readonly group: string;
  /**
   * The model of a forwarded request ('' for a call that names none). Bounded: a name Gemini doesn't list
   * is refused before forwarding (unless `upstream.model_list_ms` is 0). Absent for a request refused earlier.
   */
  readonly model?: string | undefined;
  readonly status: number;
  readonly latencyMs: number;
  /** Time until Gemini's response headers, for answers that came from Gemini. */
  readonly timeToFirstByteMs: number | undefined;
  readonly attempts: number;
  readonly retries: number;
  /** Upstream failures by class: transient (5xx, network, timeouts), quota (429), dead_key. */
  readonly upstreamErrors: { readonly transient: number; readonly quota: number; readonly deadKey: number };
  readonly keyCooldowns: number;
  /** The proxy's own refusal, if it answered without passing on a Gemini answer. */
  readonly refusal:
    | 'keys_exhausted'
    /** Every key of every group is invalid, disabled or parked for the model: none configured can serve it. */
    | 'no_usable_keys'
    /** Every key that could serve the model is parked for it: Gemini reported `limit: 0` (not in the tier). */
    | 'model_unavailable'
    /** The request's estimated input tokens exceed a whole window's token budget of every key. */
    | 'over_token_budget'
    | 'circuit_open'
    | 'client_rate_limited'
    | 'state_unavailable'
    | undefined;
  /** Tokens from Gemini's `usage`, when the answer reported them. */
  readonly inputTokens?: number | undefined;
  readonly outputTokens?: number | undefined;
  /** A model of the client's model's fallback chain answered it (status below 400), not the client's model. */
  readonly fallback?: boolean | undefined;
  /** Upstream circuits open on this instance when the request ended. */
  readonly openCircuits?: number | undefined;
  /** Keys this request parked for its model because Gemini reported `limit: 0`. */
  readonly unavailableParks?: number | undefined;
  /** Limits this request learned from Gemini's 429s. */
  readonly limitsLearned?: number | undefined;
  /** With `refusal: keys_exhausted` from budgets: the limit (configured or learned) that was spent. */
  readonly budgetRefusal?: 'rpm' | 'tpm' | 'rpd' | undefined;
}

/** Receives each request's metrics when the request ends (for a stream: when the stream ends). */
export interface MetricsSink {
  record(metrics: RequestMetrics): void;
}

/** For local runs: metrics go nowhere (the request log line carries the same facts). */
export const noMetrics: MetricsSink = { record() {} };

/** One sink that hands each record to every sink given (none: {@link noMetrics}). */
export function everySink(...sinks: ReadonlyArray<MetricsSink | undefined>): MetricsSink {
  const all = sinks.filter((s) => s !== undefined);
  if (all.length <= 1) return all[0] ?? noMetrics;
  return {
    record(metrics) {
      for (const sink of all) sink.record(metrics);
    },
  };
}
