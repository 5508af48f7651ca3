/** Reading Gemini's error bodies and deciding what an upstream answer says about the key. */

import { LONGEST_PACIFIC_DAY_MS } from './pacific-time.js';
import { isDailyQuota, type QuotaViolation, readQuotaViolations } from './quota-violations.js';

export type { QuotaMetric, QuotaViolation } from './quota-violations.js';

/** One entry of an error's `details`; fields are as received (read them with type checks). */
export interface GeminiErrorDetail {
  '@type'?: unknown;
  reason?: unknown;
  retryDelay?: unknown;
  violations?: unknown;
}

export interface GeminiError {
  code?: number;
  status?: string;
  message: string;
  details: GeminiErrorDetail[];
}

/** What an upstream answer means for the key that made it. */
export type UpstreamOutcome =
  | { kind: 'success' }
  /** The key can't work (invalid, suspended, leaked, API blocked or disabled): out of rotation. */
  | { kind: 'dead_key'; reason: string }
  /**
   * 429. `violations`: every quota Gemini named (none for a bare 429). `scope` 'day': a per-day quota
   * with a limit other than 0 is spent. `unavailable`: some quota has limit 0, i.e. the model is not in
   * the project's tier at all (Gemini still says to retry in ~40 s). `retryDelayMs`: Gemini's RetryInfo
   * (or the message's hint).
   */
  | {
      kind: 'quota';
      scope: 'day' | 'short';
      retryDelayMs: number | undefined;
      violations: readonly QuotaViolation[];
      unavailable: boolean;
    }
  /** 502/503, network failure, first-byte timeout: retry, never blacklist. */
  | { kind: 'transient' }
  /**
   * 500 (INTERNAL): Gemini failed while handling this request. Only another key tells whether the
   * request itself makes it fail; `repeated` (set by the attempt loop, which alone knows) says this
   * request already got a 500 from another key: it follows the request, and is answered.
   */
  | { kind: 'internal'; repeated?: boolean }
  /**
   * A generation call got no response headers within its bound. Gemini may still be working on (and
   * billing) it, so it is re-sent at most once per request (`resent`: this request already did).
   */
  | { kind: 'slow'; resent: boolean }
  /** Anything else: the client's own problem (or a 504 on the request itself), returned unchanged. */
  | { kind: 'client_error' };

const DEAD_REASONS = new Set([
  'API_KEY_INVALID',
  'CONSUMER_SUSPENDED',
  'API_KEY_SERVICE_BLOCKED',
  'SERVICE_DISABLED',
]);
// Message-only matches are anchored and used only when Gemini sent no details: 400 messages echo the
// client's own values, so "…'temperature' "API key not valid"" must not kill a key.
const DEAD_400_MESSAGE = /^API key (not valid|not found|expired)\b/i;
const LEAKED_MESSAGE = /^Your API key was reported as leaked\b/i;
const SUSPENDED_MESSAGE = /^Permission denied: Consumer '[^']*' has been suspended\.?$/i;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Parses a Gemini error body in its plain (`{"error":{…}}`) or array-wrapped (`[{"error":{…}}]`) form.
 * Returns undefined for anything else (empty, HTML, not JSON).
 */
export function parseGeminiError(text: string): GeminiError | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (Array.isArray(parsed)) parsed = parsed[0];
  if (!isRecord(parsed) || !isRecord(parsed.error)) return undefined;
  const e = parsed.error;
  return {
    code: typeof e.code === 'number' ? e.code : undefined,
    status: typeof e.status === 'string' ? e.status : undefined,
    message: typeof e.message === 'string' ? e.message : '',
    details: Array.isArray(e.details) ? e.details.filter(isRecord).map((d) => d as GeminiErrorDetail) : [],
  };
}

/**
 * Parses a protobuf Duration as Gemini writes it (`"38s"`, `"45.837906927s"`) into whole ms, rounded up.
 * Anything else (a sign, an exponent, no finite value) is absent; a delay longer than a Pacific day is
 * cut to one (callers clamp further, to the next Pacific midnight).
 */
export function parseRetryDelay(value: string | undefined): number | undefined {
  const m = value === undefined ? null : /^\s*(\d+(?:\.\d+)?)s\s*$/.exec(value);
  if (m?.[1] === undefined) return undefined;
  const ms = Math.ceil(Number(m[1]) * 1000);
  return Number.isFinite(ms) ? Math.min(ms, LONGEST_PACIFIC_DAY_MS) : undefined;
}

function errorReasons(error: GeminiError): string[] {
  return error.details.flatMap((d) => (typeof d.reason === 'string' ? [d.reason] : []));
}

function quotaOutcome(error: GeminiError | undefined): UpstreamOutcome {
  if (error === undefined) {
    return { kind: 'quota', scope: 'short', retryDelayMs: undefined, violations: [], unavailable: false };
  }
  const violations = readQuotaViolations(error.details, error.message);
  // A limit-0 day quota says the model is unavailable, not that today's requests are spent.
  const daySpent = violations.some((v) => v.limit !== 0 && (v.metric === 'rpd' || isDailyQuota(v.quotaId)));
  const info = error.details.map((d) => d.retryDelay).find((d): d is string => typeof d === 'string');
  const fromMessage = /retry in (\d+(?:\.\d+)?)s/i.exec(error.message)?.[1];
  const retryDelayMs = parseRetryDelay(info) ?? parseRetryDelay(fromMessage && `${fromMessage}s`);
  return {
    kind: 'quota',
    scope: daySpent ? 'day' : 'short',
    retryDelayMs,
    violations,
    unavailable: violations.some((v) => v.limit === 0),
  };
}

/**
 * Classifies an upstream answer by status and (for errors) body text.
 * Pure: the policy that acts on the outcome lives in `policy.ts`.
 */
export function classifyUpstreamResponse(status: number, bodyText: string): UpstreamOutcome {
  if (status < 400) return { kind: 'success' };
  const error = parseGeminiError(bodyText);
  if (status === 429) return quotaOutcome(error);
  if (status === 500) return { kind: 'internal' };
  if (status === 502 || status === 503) return { kind: 'transient' };
  if (error !== undefined && (status === 400 || status === 403)) {
    const dead = errorReasons(error).find((r) => DEAD_REASONS.has(r));
    if (dead !== undefined) return { kind: 'dead_key', reason: dead };
    if (error.details.length > 0) return { kind: 'client_error' };
    if (status === 400 && DEAD_400_MESSAGE.test(error.message))
      return { kind: 'dead_key', reason: 'API_KEY_INVALID' };
    if (status === 403 && LEAKED_MESSAGE.test(error.message)) return { kind: 'dead_key', reason: 'LEAKED' };
    if (status === 403 && SUSPENDED_MESSAGE.test(error.message)) {
      return { kind: 'dead_key', reason: 'CONSUMER_SUSPENDED' };
    }
  }
  return { kind: 'client_error' };
}
