import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../lambda/core/config/parse.js';
import type { UpstreamOutcome } from '../../lambda/core/gemini-errors.js';
import { type Decision, decide } from '../../lambda/core/policy.js';

const policy = parseConfig({ client_tokens: ['t'], groups: [{ name: 'g', api_keys: ['k'] }] }).policy;
const now = Date.parse('2026-07-04T15:30:00Z');

describe('Function: decide', () => {
  const cases: Array<[string, UpstreamOutcome, number, Decision]> = [
    ['success answers', { kind: 'success' }, 0, { action: 'answer' }],
    ['client error answers unchanged', { kind: 'client_error' }, 0, { action: 'answer' }],
    [
      'dead key is invalidated',
      { kind: 'dead_key', reason: 'CONSUMER_SUSPENDED' },
      0,
      { action: 'invalidate_and_rotate', reason: 'CONSUMER_SUSPENDED' },
    ],
    [
      'per-minute quota cools for RetryInfo',
      { kind: 'quota', scope: 'short', retryDelayMs: 38_000 },
      0,
      { action: 'cool_and_rotate', cooldown: { until: now + 38_000, cause: 'rpm' } },
    ],
    [
      'daily quota parks until Pacific midnight',
      { kind: 'quota', scope: 'day', retryDelayMs: 5000 },
      0,
      { action: 'cool_and_rotate', cooldown: { until: Date.parse('2026-07-05T07:00:00Z'), cause: 'rpd' } },
    ],
    [
      'quota without details uses the default',
      { kind: 'quota', scope: 'short', retryDelayMs: undefined },
      0,
      {
        action: 'cool_and_rotate',
        cooldown: { until: now + policy.default_quota_cooldown_ms, cause: 'quota' },
      },
    ],
    [
      'first transient error retries the same key',
      { kind: 'transient' },
      0,
      { action: 'retry_same_key', delayMs: policy.transient_retry_delay_ms },
    ],
    [
      'second transient error retries again',
      { kind: 'transient' },
      1,
      { action: 'retry_same_key', delayMs: policy.transient_retry_delay_ms },
    ],
    [
      'third transient error cools briefly and rotates, never invalidates',
      { kind: 'transient' },
      2,
      {
        action: 'cool_and_rotate',
        cooldown: { until: now + policy.transient_cooldown_ms, cause: 'transient' },
      },
    ],
  ];

  it('rotates once without a cooldown after a generation timed out waiting for headers, then answers', () => {
    expect(decide({ kind: 'slow', resent: false }, 0, now, policy)).toEqual({
      action: 'cool_and_rotate',
      cooldown: undefined,
    });
    expect(decide({ kind: 'slow', resent: true }, 0, now, policy)).toEqual({ action: 'answer' });
  });

  it.each(cases)('%s', (_name, outcome, retries, expected) => {
    expect(decide(outcome, retries, now, policy)).toEqual(expected);
  });

  it('sends a 500 to the next key at once, cooling nothing; answers it when another key gave one too', () => {
    expect(decide({ kind: 'internal' }, 0, now, policy)).toEqual({
      action: 'cool_and_rotate',
      cooldown: undefined,
    });
    expect(decide({ kind: 'internal', repeated: false }, 0, now, policy)).toEqual({
      action: 'cool_and_rotate',
      cooldown: undefined,
    });
    expect(decide({ kind: 'internal', repeated: true }, 0, now, policy)).toEqual({ action: 'answer' });
  });

  it('never cools past the next Pacific midnight, and ignores a delay that is no number of ms', () => {
    const midnight = Date.parse('2026-07-05T07:00:00Z');
    const short = (retryDelayMs: number | undefined) =>
      decide({ kind: 'quota', scope: 'short', retryDelayMs }, 0, now, policy);
    const fallback = { until: now + policy.default_quota_cooldown_ms, cause: 'quota' };
    expect(short(1e26)).toEqual({ action: 'cool_and_rotate', cooldown: { until: midnight, cause: 'rpm' } });
    expect(short(midnight - now + 1)).toEqual({
      action: 'cool_and_rotate',
      cooldown: { until: midnight, cause: 'rpm' },
    });
    expect(short(Number.POSITIVE_INFINITY)).toEqual({ action: 'cool_and_rotate', cooldown: fallback });
    expect(short(Number.NaN)).toEqual({ action: 'cool_and_rotate', cooldown: fallback });
    expect(short(-1000)).toEqual({ action: 'cool_and_rotate', cooldown: fallback });
    expect(short(0)).toEqual({ action: 'cool_and_rotate', cooldown: { until: now, cause: 'rpm' } });
  });

  it('rotates without a cooldown when transient_cooldown_ms is 0', () => {
    expect(decide({ kind: 'transient' }, 2, now, { ...policy, transient_cooldown_ms: 0 })).toEqual({
      action: 'cool_and_rotate',
      cooldown: undefined,
    });
  });
});
