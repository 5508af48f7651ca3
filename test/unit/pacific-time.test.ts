import { describe, expect, it } from 'vitest';
import { nextPacificMidnight, pacificDay } from '../../lambda/core/pacific-time.js';

const at = (iso: string) => Date.parse(iso);

describe('Function: nextPacificMidnight', () => {
  it.each([
    // PST (UTC-8): midnight is 08:00Z
    ['winter afternoon', '2026-01-15T20:00:00Z', '2026-01-16T08:00:00Z'],
    // PDT (UTC-7): midnight is 07:00Z
    ['summer morning', '2026-07-04T15:30:00Z', '2026-07-05T07:00:00Z'],
    ['just before midnight PDT', '2026-07-05T06:59:59.999Z', '2026-07-05T07:00:00Z'],
    ['exactly at midnight PDT moves to the next day', '2026-07-05T07:00:00Z', '2026-07-06T07:00:00Z'],
    ['UTC already on the next date', '2026-01-16T03:00:00Z', '2026-01-16T08:00:00Z'],
    // DST starts 2026-03-08 at 02:00 PST: the day is 23 h long; next midnight is PDT.
    ['day DST starts', '2026-03-08T09:00:00Z', '2026-03-09T07:00:00Z'],
    ['evening before DST starts', '2026-03-08T06:00:00Z', '2026-03-08T08:00:00Z'],
    // DST ends 2026-11-01 at 02:00 PDT: the day is 25 h long; next midnight is PST.
    ['day DST ends', '2026-11-01T08:00:00Z', '2026-11-02T08:00:00Z'],
    ['evening before DST ends', '2026-11-01T05:00:00Z', '2026-11-01T07:00:00Z'],
    ['year end', '2026-12-31T23:00:00Z', '2027-01-01T08:00:00Z'],
  ])('%s', (_name, now, expected) => {
    expect(new Date(nextPacificMidnight(at(now))).toISOString()).toBe(new Date(at(expected)).toISOString());
  });

  it('is always in the future and at most 25 hours away', () => {
    for (let t = at('2026-01-01T00:00:00Z'); t < at('2027-01-01T00:00:00Z'); t += 3_600_000 + 17_000) {
      const next = nextPacificMidnight(t);
      expect(next).toBeGreaterThan(t);
      expect(next - t).toBeLessThanOrEqual(25 * 3_600_000);
      expect(pacificDay(next)).not.toBe(pacificDay(t));
      expect(pacificDay(next - 1)).toBe(pacificDay(t));
    }
  });
});
