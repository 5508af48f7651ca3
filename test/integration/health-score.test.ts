import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keyId } from '../../lambda/core/secrets.js';
import {
  chatBody,
  type Harness,
  KEYS,
  keyIndexes,
  postChat,
  startHarness,
  TOKEN,
} from '../support/harness.js';

describe('Integration: health scores steer selection', () => {
  let h: Harness;

  beforeAll(async () => {
    h = await startHarness({
      config: {
        policy: {
          transient_retries: 0,
          transient_cooldown_ms: 0,
          transient_retry_delay_ms: 1,
          circuit_failure_threshold: 0,
          health_floor: 0.5,
        },
      },
    });
  });
  afterAll(async () => {
    await h.close();
  });

  it('passes over a key that keeps failing while healthier keys serve, and shows its score', async () => {
    // Prepare: key 0 fails its next 3 calls (transient); no cooldowns, so only the score can steer
    h.fake.failNext(KEYS[0]!, 3, 503);
    for (let i = 0; i < 4; i++) await postChat(h, chatBody());
    const before = h.fake.calls.length;

    // Act
    for (let i = 0; i < 12; i++) expect((await postChat(h, chatBody())).status).toBe(200);

    // Assess: key 0 (score 0.5 × 0.8 = 0.4 < 0.5) got none of the next 12 requests
    expect(keyIndexes(h).slice(before)).not.toContain(0);
    const res = await fetch(`${h.url}/health/detailed`, { headers: { authorization: `Bearer ${TOKEN}` } });
    const body = (await res.json()) as { groups: Array<{ keys: Array<{ id: string; score: number }> }> };
    const scores = Object.fromEntries(body.groups[0]!.keys.map((k) => [k.id, k.score]));
    expect(scores[keyId(KEYS[0]!)]).toBe(0.4);
    expect(scores[keyId(KEYS[1]!)]).toBe(1);
  });
});
