/** What one request did, as numbers: the entry decides where they go (CloudWatch EMF on Lambda). */
export interface RequestMetrics {
  /** Low-cardinality only: the group, never a model name or a key. */
  readonly group: string;
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
