import { describe, expect, it } from 'vitest';
import { countRequest, quotaVerdict } from '../../lambda/core/key-state/quota.js';
import { nextPacificMidnight, pacificDay } from '../../lambda/core/pacific-time.js';

const now = Date.parse('2026-07-04T15:30:10Z');
const minute = Math.floor(now / 60_000);

describe('Function: countRequest', () => {
  it('counts the first request of a budget in both windows', () => {
    expect(countRequest({ rpm: 2 }, undefined, now)).toEqual({
      day: pacificDay(now),
      dayCount: 1,
      minute,
      minuteCount: 1,
      minuteTokens: 0,
    });
  });

  it('starts a new minute afresh and keeps counting the day', () => {
    const counts = { day: pacificDay(now), dayCount: 5, minute: minute - 1, minuteCount: 2, minuteTokens: 0 };
    expect(countRequest({ rpm: 2 }, counts, now)).toMatchObject({ dayCount: 6, minute, minuteCount: 1 });
  });

  it('starts a new Pacific day afresh', () => {
    const counts = { day: '2026-07-03', dayCount: 250, minute, minuteCount: 2, minuteTokens: 0 };
    expect(countRequest({ rpd: 250 }, counts, now)).toMatchObject({ dayCount: 1, minuteCount: 1 });
  });
});

describe('Function: quotaVerdict', () => {
  it('refuses a full minute until the next one, and a full day until Pacific midnight', () => {
    const counts = countRequest({ rpm: 1, rpd: 1 }, undefined, now);
    expect(quotaVerdict({ rpm: 1 }, counts, now)).toEqual({
      ok: false,
      retryAt: (minute + 1) * 60_000,
      metric: 'rpm',
    });
    expect(quotaVerdict({ rpm: 1, rpd: 1 }, counts, now)).toEqual({
      ok: false,
      retryAt: nextPacificMidnight(now),
      metric: 'rpd',
    });
    expect(quotaVerdict({ rpm: 2, rpd: 2 }, counts, now)).toEqual({ ok: true });
  });
});
