/** Gemini's daily quotas reset at midnight America/Los_Angeles; this finds that instant. */

const TIME_ZONE = 'America/Los_Angeles';
const parts = new Intl.DateTimeFormat('en-US', {
  timeZone: TIME_ZONE,
  hourCycle: 'h23',
  year: 'numeric',
  month: 'numeric',
  day: 'numeric',
  hour: 'numeric',
  minute: 'numeric',
  second: 'numeric',
});

/**
 * The longest Pacific calendar day (the one DST ends on): the next Pacific midnight is never further
 * away. Nothing Gemini asks the proxy to wait for is longer (a daily quota resets then).
 */
export const LONGEST_PACIFIC_DAY_MS = 25 * 3_600_000;

/** Offset of Los Angeles wall time from UTC at `epochMs`, in ms (e.g. -7 h during PDT). */
function offsetAt(epochMs: number): number {
  const p: Record<string, number> = {};
  for (const { type, value } of parts.formatToParts(new Date(epochMs))) p[type] = Number(value);
  const wall = Date.UTC(p.year!, p.month! - 1, p.day!, p.hour!, p.minute!, p.second!);
  return wall - Math.floor(epochMs / 1000) * 1000;
}

/** The Pacific calendar date (y, m 1-12, d) at `epochMs`. */
function pacificDate(epochMs: number): { y: number; m: number; d: number } {
  const wall = new Date(epochMs + offsetAt(epochMs));
  return { y: wall.getUTCFullYear(), m: wall.getUTCMonth() + 1, d: wall.getUTCDate() };
}

/**
 * The first instant after `epochMs` at which the Pacific calendar day changes: the next
 * 00:00 America/Los_Angeles, correct on both sides of a DST change.
 */
export function nextPacificMidnight(epochMs: number): number {
  const { y, m, d } = pacificDate(epochMs);
  const wallMidnight = Date.UTC(y, m - 1, d + 1);
  // Guess with the current offset, then correct with the offset in force at the guess.
  let guess = wallMidnight - offsetAt(epochMs);
  guess = wallMidnight - offsetAt(guess);
  return guess;
}

/** The Pacific day as `YYYY-MM-DD`, for naming daily windows. */
export function pacificDay(epochMs: number): string {
  const { y, m, d } = pacificDate(epochMs);
  return `${y}-${String(m).padStart(2, '0')}-${String(d).padStart(2, '0')}`;
}
