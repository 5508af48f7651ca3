/**
 * Reading the quota violations of a Gemini 429: its `QuotaFailure.violations` and the message's
 * `* Quota exceeded for metric: <metric>, limit: <N>, model: <model>` lines. Bodies come from the
 * network: nothing here trusts a field's type, and only the first few violations are read.
 */

/** Which budget a violation spent: requests per minute, input tokens per minute, requests per day. */
export type QuotaMetric = 'rpm' | 'tpm' | 'rpd' | 'unknown';

/** One quota Gemini says a request exceeded. */
export interface QuotaViolation {
  /** Requests/minute, input tokens/minute, requests/day; anything else (e.g. tokens per day) is unknown. */
  readonly metric: QuotaMetric;
  /** The quota's limit: `quotaValue`, else the message's `limit: N` for the same metric; 0: not in the tier. */
  readonly limit: number | undefined;
  /** The model the quota is for, without a leading `models/`. */
  readonly model: string | undefined;
  /** Gemini's quota id as sent ('' if absent), cut to a sane length; names a quota, never a key. */
  readonly quotaId: string;
}

/** Violations read from one 429 at most (a hostile body may list thousands). */
export const MAX_VIOLATIONS = 32;
const MAX_FIELD_CHARS = 200;
// The message is scanned this far: Gemini's lines come first, before any echo of the request.
const MAX_MESSAGE_CHARS = 16_384;
const LINE =
  /\*\s*Quota exceeded for metric:\s*([^,\n]{1,200}),\s*limit:\s*(\d{1,15})(?:,\s*model:\s*([^\s,]{1,200}))?/gi;

/** One message line: the limit it states and what it states it for. */
interface MessageLine {
  readonly metricName: string;
  readonly limit: number;
  readonly model: string | undefined;
  used: boolean;
}

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);
const text = (value: unknown): string => (typeof value === 'string' ? value.slice(0, MAX_FIELD_CHARS) : '');
const modelName = (value: string): string | undefined => value.trim().replace(/^models\//i, '') || undefined;

/** True when a quota id or metric names a per-day window. */
export function isDailyQuota(quotaIdOrMetric: string): boolean {
  return /day|daily/i.test(quotaIdOrMetric);
}

/**
 * Classifies a quota from its id and/or metric name (either may be ''), case-insensitively:
 * `GenerateRequestsPerMinutePerProjectPerModel-FreeTier` → rpm, `…PerDay…` or `…_per_day` → rpd,
 * `GenerateContentInputTokensPerModelPerMinute-FreeTier` or `…_input_token_count` → tpm. A request
 * metric without a window (`…/generate_content_free_tier_requests`, used by Gemini for both the minute
 * and the day quota) is unknown unless the id says which.
 */
export function classifyQuota(quotaId: string, quotaMetric: string): QuotaMetric {
  const both = `${quotaId} ${quotaMetric}`;
  const daily = isDailyQuota(both);
  if (/token/i.test(both)) return daily ? 'unknown' : 'tpm';
  if (!/request/i.test(both)) return 'unknown';
  if (daily) return 'rpd';
  return /minute/i.test(both) ? 'rpm' : 'unknown';
}

/** A limit as Gemini writes it: a string (or number) of a non-negative integer; else absent. */
function readLimit(value: unknown): number | undefined {
  const digits = typeof value === 'number' ? String(value) : text(value).trim();
  if (!/^\d{1,15}$/.test(digits)) return undefined;
  return Number(digits);
}

function messageLines(message: string): MessageLine[] {
  const lines: MessageLine[] = [];
  for (const m of message.slice(0, MAX_MESSAGE_CHARS).matchAll(LINE)) {
    if (lines.length >= MAX_VIOLATIONS) break;
    lines.push({
      metricName: (m[1] ?? '').trim(),
      limit: Number(m[2]),
      model: modelName(m[3] ?? ''),
      used: false,
    });
  }
  return lines;
}

/**
 * The message line that restates a violation: the first unused one for the same metric name and model
 * (Gemini writes them in the order of the violations, so two with one metric pair up in turn).
 */
function pairLine(lines: MessageLine[], metricName: string, metric: QuotaMetric, model: string | undefined) {
  const name = metricName.toLowerCase();
  const line = lines.find(
    (l) =>
      !l.used &&
      (name !== ''
        ? l.metricName.toLowerCase() === name
        : metric !== 'unknown' && classifyQuota('', l.metricName) === metric) &&
      (model === undefined || l.model === undefined || l.model === model),
  );
  if (line !== undefined) line.used = true;
  return line;
}

/** The raw violation records of a body's `QuotaFailure` details, at most MAX_VIOLATIONS. */
function rawViolations(details: readonly unknown[]): Record<string, unknown>[] {
  const found: Record<string, unknown>[] = [];
  for (const detail of details) {
    if (!isRecord(detail) || !Array.isArray(detail.violations)) continue;
    for (const v of detail.violations) {
      if (found.length >= MAX_VIOLATIONS) return found;
      if (isRecord(v)) found.push(v);
    }
  }
  return found;
}

/**
 * Every quota a 429 names: from its `QuotaFailure` details, each completed by the message line that
 * restates it (its limit when `quotaValue` is absent, its model when the dimensions lack one); from the
 * message lines alone when the details list none. Never throws; at most MAX_VIOLATIONS.
 */
export function readQuotaViolations(details: readonly unknown[], message: string): QuotaViolation[] {
  const lines = messageLines(message);
  const raw = rawViolations(details);
  if (raw.length === 0) {
    return lines.map((l) => ({
      metric: classifyQuota('', l.metricName),
      limit: l.limit,
      model: l.model,
      quotaId: '',
    }));
  }
  return raw.map((v) => {
    const quotaId = text(v.quotaId);
    const quotaMetric = text(v.quotaMetric);
    const metric = classifyQuota(quotaId, quotaMetric);
    const dimensions = isRecord(v.quotaDimensions) ? v.quotaDimensions : {};
    const declared = modelName(text(dimensions.model));
    const line = pairLine(lines, quotaMetric, metric, declared);
    return {
      metric,
      limit: readLimit(v.quotaValue) ?? line?.limit,
      model: declared ?? line?.model,
      quotaId,
    };
  });
}
