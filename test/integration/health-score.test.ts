import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryKeyStateStore } from '../../lambda/adapters/state/memory-store.js';
import { keyId } from '../../lambda/core/credentials.js';
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

  it('halves the score of a key whose latest scheduled check failed transiently', async () => {
    // Prepare: a store where the health check noted a transient failure for key 2 a minute ago
    const store = new MemoryKeyStateStore();
    await store.record({
      kind: 'checked',
      group: 'primary',
      keyId: keyId(KEYS[2]!),
      outcome: 'transient',
      at: Date.now() - 60_000,
    });
    await store.record({
      kind: 'checked',
      group: 'primary',
      keyId: keyId(KEYS[3]!),
      outcome: 'valid',
      at: Date.now(),
    });
    const t = await startHarness({ store, config: { policy: { health_floor: 0.6 } } });
    try {
      // Act
      for (let i = 0; i < 8; i++) expect((await postChat(t, chatBody())).status).toBe(200);
      const res = await fetch(`${t.url}/health/detailed`, { headers: { authorization: `Bearer ${TOKEN}` } });
      const body = (await res.json()) as {
        groups: Array<{ keys: Array<{ id: string; score: number; lastCheck: { outcome: string } | null }> }>;
      };

      // Assess: key 2 scores 0.5 (< 0.6) and is passed over; key 3's valid check changes nothing
      const keys = Object.fromEntries(body.groups[0]!.keys.map((k) => [k.id, k]));
      expect(keys[keyId(KEYS[2]!)]).toMatchObject({ score: 0.5, lastCheck: { outcome: 'transient' } });
      expect(keys[keyId(KEYS[3]!)]).toMatchObject({ score: 1, lastCheck: { outcome: 'valid' } });
      expect(keyIndexes(t)).not.toContain(2);
    } finally {
      await t.close();
    }
  });

  it('after a Gemini-wide 503 storm, rotates over every key again: a storm is not charged to keys', async () => {
    // Prepare: retries on (the default), no cooldowns or circuit, so only scores could narrow rotation
    const t = await startHarness({
      config: {
        policy: {
          transient_retry_delay_ms: 1,
          transient_cooldown_ms: 0,
          circuit_failure_threshold: 0,
          max_attempts: 6,
        },
      },
    });
    try {
      for (const key of KEYS) t.fake.failNext(key, 100, 503);
      for (let i = 0; i < 3; i++) expect((await postChat(t, chatBody())).status).toBe(503);
      t.fake.reset();

      // Act: Gemini is back
      for (let i = 0; i < 8; i++) expect((await postChat(t, chatBody())).status).toBe(200);

      // Assess: 8 requests over 4 keys used all 4, twice each; no key was blamed
      const used = keyIndexes(t);
      expect(new Set(used)).toEqual(new Set([0, 1, 2, 3]));
      expect(used.filter((i) => i === used[0]).length).toBe(2);
      const res = await fetch(`${t.url}/health/detailed`, { headers: { authorization: `Bearer ${TOKEN}` } });
      const body = (await res.json()) as { groups: Array<{ keys: Array<{ score: number }> }> };
      expect(body.groups[0]!.keys.map((k) => k.score)).toEqual([1, 1, 1, 1]);
    } finally {
      await t.close();
    }
  });
});
