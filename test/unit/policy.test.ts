import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../lambda/core/config/parse.js';
import type { QuotaViolation, UpstreamOutcome } from '../../lambda/core/gemini-errors.js';
import type { Cooldown } from '../../lambda/core/key-state/port.js';
import { type Decision, decide, quotaCooldown } from '../../lambda/core/policy.js';

const policy = parseConfig({ client_tokens: ['t'], groups: [{ name: 'g', api_keys: ['k'] }] }).policy;
const now = Date.parse('2026-07-04T15:30:00Z');
const midnight = Date.parse('2026-07-05T07:00:00Z');

type Quota = Extract<UpstreamOutcome, { kind: 'quota' }>;
const quota = (
  scope: Quota['scope'],
  retryDelayMs: number | undefined,
  violations: QuotaViolation[] = [],
): Quota => ({
  kind: 'quota',
  scope,
  retryDelayMs,
  violations,
  unavailable: violations.some((v) => v.limit === 0),
});
const spent = (metric: QuotaViolation['metric'], limit: number | undefined = 10): QuotaViolation => ({
  metric,
  limit,
  model: 'gemini-2.5-pro',
  quotaId: '',
});

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
      quota('short', 38_000),
      0,
      { action: 'cool_and_rotate', cooldown: { until: now + 38_000, cause: 'rpm' } },
    ],
    [
      'daily quota parks until Pacific midnight',
      quota('day', 5000),
      0,
      { action: 'cool_and_rotate', cooldown: { until: Date.parse('2026-07-05T07:00:00Z'), cause: 'rpd' } },
    ],
    [
      'quota without details uses the default',
      quota('short', undefined),
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
    const short = (retryDelayMs: number | undefined) => decide(quota('short', retryDelayMs), 0, now, policy);
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

describe('Function: quotaCooldown', () => {
  const parked = { ...policy, unavailable_park_ms: 3_600_000 };
  const cases: Array<[string, Quota, typeof policy, Cooldown]> = [
    [
      'limit 0 parks the model as unavailable until Pacific midnight, not for Gemini’s 40 s',
      quota('short', 40_000, [spent('rpm', 0), spent('tpm', 0)]),
      policy,
      { until: midnight, cause: 'unavailable' },
    ],
    [
      'limit 0 parks for policy.unavailable_park_ms when set, even if shorter than the retry delay',
      quota('short', 2 * 3_600_000, [spent('rpm', 0)]),
      parked,
      { until: now + 3_600_000, cause: 'unavailable' },
    ],
    [
      'a limit-0 day quota is no spent day: the park length still applies',
      quota('short', 40_000, [spent('rpm', 0), spent('rpd', 0)]),
      parked,
      { until: now + 3_600_000, cause: 'unavailable' },
    ],
    [
      'a spent day wins over a shorter unavailable park',
      quota('day', 40_000, [spent('rpm', 0), spent('rpd', 250)]),
      parked,
      { until: midnight, cause: 'rpd' },
    ],
    [
      'a day violation parks until midnight even when RetryInfo says 40 s',
      quota('day', 40_000, [spent('rpm'), spent('rpd', 250)]),
      policy,
      { until: midnight, cause: 'rpd' },
    ],
    [
      'only input-token quotas: the delay, as tpm',
      quota('short', 38_864, [spent('tpm', 250_000)]),
      policy,
      { until: now + 38_864, cause: 'tpm' },
    ],
    [
      'tokens and requests: the delay, as rpm',
      quota('short', 38_864, [spent('tpm', 250_000), spent('rpm')]),
      policy,
      { until: now + 38_864, cause: 'rpm' },
    ],
    [
      'an unknown quota with a delay: rpm',
      quota('short', 5000, [spent('unknown', undefined)]),
      policy,
      { until: now + 5000, cause: 'rpm' },
    ],
    [
      'a spent quota beside a limit-0 one waits the longer of the two',
      quota('short', 2 * 3_600_000, [spent('rpm', 0), spent('tpm', 250_000)]),
      parked,
      { until: now + 2 * 3_600_000, cause: 'tpm' },
    ],
    [
      'a bare 429: the default',
      quota('short', undefined),
      policy,
      { until: now + policy.default_quota_cooldown_ms, cause: 'quota' },
    ],
  ];

  it.each(cases)('%s', (_name, outcome, p, expected) => {
    expect(quotaCooldown(outcome, now, p)).toEqual(expected);
  });
});
