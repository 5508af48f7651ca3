import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../lambda/core/config/parse.js';
import {
  type Blocked,
  nothingBlocked,
  whenNoKeyAnswered,
} from '../../lambda/core/forwarding/no-key-answered.js';

const policy = parseConfig({
  client_tokens: ['t'],
  groups: [{ name: 'g', api_keys: ['k'] }],
  policy: { max_wait_ms: 4000 },
}).policy;
const blocked = (over: Partial<Blocked> = {}): Blocked => ({ ...nothingBlocked(), ...over });
const attempts = (over: { quotaRetryAt?: number; parks?: number; spent?: boolean } = {}) => ({
  signal: new AbortController().signal,
  lastFailure: undefined,
  spent: over.spent ?? false,
  quotaRetryAt: over.quotaRetryAt,
  parks: over.parks ?? 0,
});
const request = { model: 'gemini-2.5-pro', tokens: 100 };

describe('Function: whenNoKeyAnswered', () => {
  it("waits for the soonest key to free up, not for a cooldown of this request's that has ended", () => {
    // A key this request cooled until 9,000 is free again at 10,000: the wait is for the budget at 11,000
    const next = whenNoKeyAnswered(
      attempts({ quotaRetryAt: 9000 }),
      false,
      blocked({ soonest: 11_000, quota: true, metric: 'tpm' }),
      10_000,
      policy,
      request,
    );
    expect(next).toEqual({ waitMs: 1000 });
  });

  it('still waits for a cooldown of its own that is running, when it ends first', () => {
    const next = whenNoKeyAnswered(
      attempts({ quotaRetryAt: 10_500 }),
      false,
      blocked({ soonest: 11_000 }),
      10_000,
      policy,
      request,
    );
    expect(next).toEqual({ waitMs: 500 });
  });

  it('does not call a model unavailable when the attempts ran out on parks: other keys may serve it', async () => {
    const next = whenNoKeyAnswered(
      attempts({ parks: 2, spent: true }),
      false,
      blocked(),
      10_000,
      policy,
      request,
    );
    expect(next).toMatchObject({ response: { status: 503 } });
    expect(next).not.toHaveProperty('refusal', 'model_unavailable');
  });

  it('answers model_unavailable (403) when the only keys left are parked, and over_token_budget (400) when too small', () => {
    const parked = whenNoKeyAnswered(attempts({ parks: 2 }), false, blocked(), 10_000, policy, request);
    expect(parked).toMatchObject({ refusal: 'model_unavailable', response: { status: 403 } });
    const small = whenNoKeyAnswered(attempts(), false, blocked({ overTpm: 50 }), 10_000, policy, request);
    expect(small).toMatchObject({ refusal: 'over_token_budget', response: { status: 400 } });
    // A key that will free up wins over both: the client is told when to retry.
    const later = whenNoKeyAnswered(
      attempts({ parks: 2 }),
      false,
      blocked({ soonest: 70_000, parked: true }),
      10_000,
      { ...policy, max_wait_ms: 0 },
      request,
    );
    expect(later).toMatchObject({ refusal: 'keys_exhausted', response: { status: 429 } });
  });
});
