/** Quota windows: per-minute windows for rpm, Pacific days for rpd. Pure arithmetic shared by every store. */

import { nextPacificMidnight, pacificDay } from '../pacific-time.js';
import type { QuotaLimits } from './port.js';

export const MINUTE_MS = 60_000;

/** The fixed window of `windowMs` (a minute unless configured) that `now` falls in, counted from the epoch. */
export function minuteIndex(now: number, windowMs = MINUTE_MS): number {
  return Math.floor(now / windowMs);
}

/** The length of a budget's "minute" window: a minute, as Gemini's, unless set (tests, benchmarks). */
export function rpmWindow(limits: QuotaLimits): number {
  return limits.windowMs ?? MINUTE_MS;
}

/** Counts of one budget×model: requests in the current Pacific day and in minute `minute`. */
export interface WindowCounts {
  readonly day: string;
  readonly dayCount: number;
  readonly minute: number;
  readonly minuteCount: number;
}

/**
 * Whether one more request fits the limits given the current counts, and if not, when it will:
 * the next minute for rpm, the next Pacific midnight for rpd (whichever is later when both are full).
 */
export function quotaVerdict(
  limits: QuotaLimits,
  counts: WindowCounts | undefined,
  now: number,
): { ok: true } | { ok: false; retryAt: number } {
  const day = pacificDay(now);
  const windowMs = rpmWindow(limits);
  const minute = minuteIndex(now, windowMs);
  const dayCount = counts?.day === day ? counts.dayCount : 0;
  const minuteCount = counts?.day === day && counts.minute === minute ? counts.minuteCount : 0;
  const dayFull = limits.rpd !== undefined && dayCount >= limits.rpd;
  const minuteFull = limits.rpm !== undefined && minuteCount >= limits.rpm;
  if (dayFull) return { ok: false, retryAt: nextPacificMidnight(now) };
  if (minuteFull) return { ok: false, retryAt: (minute + 1) * windowMs };
  return { ok: true };
}

/** True when the limits constrain anything. */
export function hasLimits(limits: QuotaLimits | undefined): limits is QuotaLimits {
  return limits !== undefined && (limits.rpm !== undefined || limits.rpd !== undefined);
}
