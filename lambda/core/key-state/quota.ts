/** Quota windows: per-minute windows for rpm, Pacific days for rpd. Pure arithmetic shared by every store. */

import { nextPacificMidnight, pacificDay } from '../pacific-time.js';
import type { QuotaLimits } from './port.js';

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
  const windowMs = rpmWindow(limits);
  const current = countsAt(counts, now, windowMs);
  const dayFull = limits.rpd !== undefined && current.dayCount >= limits.rpd;
  const minuteFull = limits.rpm !== undefined && current.minuteCount >= limits.rpm;
  if (dayFull) return { ok: false, retryAt: nextPacificMidnight(now) };
  if (minuteFull) return { ok: false, retryAt: (current.minute + 1) * windowMs };
  return { ok: true };
}

/** The counts after one more request at `now`, for a store that keeps them itself (the memory store). */
export function countRequest(
  limits: QuotaLimits,
  counts: WindowCounts | undefined,
  now: number,
): WindowCounts {
  const current = countsAt(counts, now, rpmWindow(limits));
  return { ...current, dayCount: current.dayCount + 1, minuteCount: current.minuteCount + 1 };
}

/** The counts as they stand at `now`: a new Pacific day or a new window counts from zero. */
function countsAt(counts: WindowCounts | undefined, now: number, windowMs: number): WindowCounts {
  const day = pacificDay(now);
  const minute = minuteIndex(now, windowMs);
  const sameDay = counts?.day === day;
  return {
    day,
    dayCount: sameDay ? counts.dayCount : 0,
    minute,
    minuteCount: sameDay && counts.minute === minute ? counts.minuteCount : 0,
  };
}

/** True when the limits constrain anything. */
export function hasLimits(limits: QuotaLimits | undefined): limits is QuotaLimits {
  return (
    limits !== undefined && (limits.rpm !== undefined || limits.rpd !== undefined || limits.tpm !== undefined)
  );
}
