/**
 * Quota windows: per-minute windows for rpm and tpm, Pacific days for rpd. Pure arithmetic shared by every
 * store, and the rule that merges what the operator configured with what Gemini reported.
 */

import { nextPacificMidnight, pacificDay } from '../pacific-time.js';
import type { BudgetMetric, LearnedLimits, QuotaLimits } from './port.js';

/** Gemini's per-minute window, and the client limits' window. */
export const MINUTE_MS = 60_000;

/** The fixed window of `windowMs` (a minute unless configured) that `now` falls in, counted from the epoch. */
export function minuteIndex(now: number, windowMs = MINUTE_MS): number {
  return Math.floor(now / windowMs);
}

/** The length of a budget's "minute" window: a minute, as Gemini's, unless set (tests, benchmarks). */
export function rpmWindow(limits: QuotaLimits): number {
  return limits.windowMs ?? MINUTE_MS;
}

/** Counts of one budget×model: requests in the current Pacific day, requests and input tokens in `minute`. */
export interface WindowCounts {
  readonly day: string;
  readonly dayCount: number;
  readonly minute: number;
  readonly minuteCount: number;
  readonly minuteTokens: number;
}

/** Why a budget can't take a request now: which limit it would pass, and when that limit lets it. */
export type QuotaVerdict = { ok: true } | { ok: false; retryAt: number; metric: BudgetMetric };

/**
 * Whether one more request of `tokens` input tokens fits the limits given the current counts, and if not,
 * when it will: the next Pacific midnight for rpd, the next window for rpm and tpm (the later when several
 * are full). A request larger than a whole window's tpm never fits: see {@link overTokenBudget}.
 */
export function quotaVerdict(
  limits: QuotaLimits,
  counts: WindowCounts | undefined,
  now: number,
  tokens = 0,
): QuotaVerdict {
  const windowMs = rpmWindow(limits);
  const current = countsAt(counts, now, windowMs);
  if (limits.rpd !== undefined && current.dayCount >= limits.rpd) {
    return { ok: false, retryAt: nextPacificMidnight(now), metric: 'rpd' };
  }
  const nextWindow = (current.minute + 1) * windowMs;
  if (limits.rpm !== undefined && current.minuteCount >= limits.rpm) {
    return { ok: false, retryAt: nextWindow, metric: 'rpm' };
  }
  if (limits.tpm !== undefined && current.minuteTokens > 0 && current.minuteTokens + tokens > limits.tpm) {
    return { ok: false, retryAt: nextWindow, metric: 'tpm' };
  }
  return { ok: true };
}

/** True when a request of `tokens` is larger than a whole window's token budget: no window will take it. */
export function overTokenBudget(limits: QuotaLimits | undefined, tokens: number): boolean {
  return limits?.tpm !== undefined && tokens > limits.tpm;
}

/** The counts after one more request of `tokens` at `now`, for a store that keeps them itself. */
export function countRequest(
  limits: QuotaLimits,
  counts: WindowCounts | undefined,
  now: number,
  tokens = 0,
): WindowCounts {
  const current = countsAt(counts, now, rpmWindow(limits));
  return {
    ...current,
    dayCount: current.dayCount + 1,
    minuteCount: current.minuteCount + 1,
    minuteTokens: current.minuteTokens + tokens,
  };
}

/** The counts after charging (or refunding, `delta` < 0) input tokens to window `minute`, if still current. */
export function chargeTokens(
  counts: WindowCounts | undefined,
  minute: number,
  delta: number,
): WindowCounts | undefined {
  if (counts === undefined || counts.minute !== minute) return counts;
  return { ...counts, minuteTokens: Math.max(0, counts.minuteTokens + delta) };
}

/** The counts as they stand at `now`: a new Pacific day or a new window counts from zero. */
function countsAt(counts: WindowCounts | undefined, now: number, windowMs: number): WindowCounts {
  const day = pacificDay(now);
  const minute = minuteIndex(now, windowMs);
  const sameDay = counts?.day === day;
  const sameMinute = sameDay && counts.minute === minute;
  return {
    day,
    dayCount: sameDay ? counts.dayCount : 0,
    minute,
    minuteCount: sameMinute ? counts.minuteCount : 0,
    minuteTokens: sameMinute ? counts.minuteTokens : 0,
  };
}

/** True when the limits constrain anything. */
export function hasLimits(limits: QuotaLimits | undefined): limits is QuotaLimits {
  return (
    limits !== undefined && (limits.rpm !== undefined || limits.rpd !== undefined || limits.tpm !== undefined)
  );
}

/**
 * The limits a budget is held to for a model: each metric as configured, else as Gemini last reported it
 * (while that report is in force). Configured limits win; the window length is the configured one.
 */
export function effectiveLimits(
  configured: QuotaLimits | undefined,
  learned: LearnedLimits | undefined,
  now: number,
): QuotaLimits | undefined {
  if (learned === undefined) return configured;
  const pick = (metric: BudgetMetric) =>
    configured?.[metric] ??
    (learned[metric] !== undefined && learned[metric].until > now ? learned[metric].limit : undefined);
  const limits = { rpm: pick('rpm'), tpm: pick('tpm'), rpd: pick('rpd'), windowMs: configured?.windowMs };
  return hasLimits(limits) ? limits : configured;
}
