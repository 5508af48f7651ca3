/** The proxy's own answers when no Gemini answer is passed on: OpenAI-shaped, with Retry-After where useful. */
import type { ProxyResponse } from './http.js';
import { UpstreamError } from './http.js';
import { openAiError } from './openai-errors.js';
import { LONGEST_PACIFIC_DAY_MS } from './pacific-time.js';

/** The longest Retry-After the proxy sends (s): no cooldown outlasts the next Pacific midnight. */
export const MAX_RETRY_AFTER_S = LONGEST_PACIFIC_DAY_MS / 1000;

/**
 * A wait as a Retry-After value: whole seconds from 1 to {@link MAX_RETRY_AFTER_S}, whatever the wait
 * was computed from (stored state of another instance or an older version may hold any instant).
 */
export function retryAfterSeconds(waitMs: number): number {
  if (Number.isNaN(waitMs)) return 1;
  return Math.min(MAX_RETRY_AFTER_S, Math.max(1, Math.ceil(waitMs / 1000)));
}

/** A refusal the client should retry: `Retry-After` in whole seconds, also named in the message. */
function retryLater(
  status: number,
  waitMs: number,
  message: (seconds: number) => string,
  type: string,
  code: string,
): ProxyResponse {
  const seconds = retryAfterSeconds(waitMs);
  return openAiError(status, message(seconds), type, code, { 'retry-after': String(seconds) });
}

export function keysExhausted(waitMs: number, quota = false): ProxyResponse {
  const why = quota ? 'has used its quota (configured, or as Gemini reported it)' : 'is cooling down';
  return retryLater(
    429,
    waitMs,
    (s) => `Every Gemini key ${why} for this model. Retry in ${s}s.`,
    'rate_limit_error',
    'keys_exhausted',
  );
}

/**
 * Gemini reported the model not available to the tier of every key that could serve it (`limit: 0`): those
 * keys are parked for it and no other key is usable. 403, not 429: waiting won't help before the quota day
 * ends (or the operator lifts the parks), and SDKs retry a 429 by themselves.
 */
export function modelUnavailable(model: string): ProxyResponse {
  return openAiError(
    403,
    `The model \`${model}\` is not available to the Gemini projects of this proxy's keys (Gemini reported a quota limit of 0). ` +
      'Use another model, or add keys of a project whose tier includes it.',
    'invalid_request_error',
    'model_unavailable',
  );
}

/**
 * The request's estimated input tokens exceed a whole minute's input-token budget of every key that could
 * serve it: no window will ever take it, so it is refused at once rather than tried on every key.
 */
export function overTokenBudget(tokens: number, tpm: number): ProxyResponse {
  return openAiError(
    400,
    `This request has about ${tokens} input tokens, more than the ${tpm} input tokens per minute any key may use for this model. ` +
      'Send a shorter prompt, or use a model with a larger budget.',
    'invalid_request_error',
    'over_token_budget',
  );
}

export function clientLimited(waitMs: number): ProxyResponse {
  return retryLater(
    429,
    waitMs,
    (s) => `This client token is over its requests-per-minute limit. Retry in ${s}s.`,
    'rate_limit_error',
    'client_rate_limited',
  );
}

export function networkFailure(err: unknown): ProxyResponse {
  const kind = err instanceof UpstreamError ? err.kind : 'network';
  if (kind === 'first_byte_timeout' || kind === 'connect_timeout') {
    return openAiError(504, `Gemini did not answer in time (${kind}).`, 'server_error', 'upstream_timeout');
  }
  if (kind === 'proxy' && err instanceof Error) {
    // The tunnel's message: `proxy scheme://host:port: what failed`, without credentials.
    return openAiError(502, `The outbound ${err.message}.`, 'server_error', 'upstream_proxy_failed');
  }
  return openAiError(502, 'Could not reach Gemini.', 'server_error', 'upstream_unreachable');
}

/** The client went away (499: nobody may read it, but it is logged) or the request deadline passed (504). */
export function cancelled(clientGone: boolean): ProxyResponse {
  if (clientGone) {
    return openAiError(499, 'The request was cancelled by the client.', 'invalid_request_error', 'cancelled');
  }
  return openAiError(
    504,
    'The request did not complete within the proxy deadline.',
    'server_error',
    'deadline_exceeded',
  );
}

/** Every target that could serve is failing and its circuit is open: 503 until it lets probes through. */
export function circuitOpen(waitMs: number): ProxyResponse {
  return retryLater(
    503,
    waitMs,
    (s) => `Gemini is failing repeatedly; the proxy is holding requests back for ${s}s.`,
    'server_error',
    'circuit_open',
  );
}

/**
 * The request needs a budget claim (a group with `limits`, a client with `rpm`) and the shared state
 * (DynamoDB) could not take it: down with `state.on_outage: refuse`, or not answering within the request's
 * allowance. Refused rather than risk passing the configured limits; Gemini is not called.
 */
export function stateUnavailable(waitMs: number): ProxyResponse {
  return retryLater(
    503,
    waitMs,
    (s) =>
      `The proxy's shared quota state is unavailable, so it cannot count this request against its limits. Retry in ${s}s.`,
    'server_error',
    'state_unavailable',
  );
}
