import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoDbKeyStateStore } from '../../lambda/adapters/state/dynamodb/store.js';
import { keyId } from '../../lambda/core/credentials.js';
import { type DynamoEngine, startDynamoEngine, testClient } from '../support/dynamo-engine.js';
import { chatBody, type Harness, KEYS, leaks, postChat, startHarness } from '../support/harness.js';

describe('Integration: the proxy on shared DynamoDB state (real engine)', () => {
  let engine: DynamoEngine;

  beforeAll(async () => {
    engine = await startDynamoEngine();
  });
  afterAll(async () => {
    await engine.close();
  });

  const state = (over: Record<string, unknown> = {}) => ({
    store: 'dynamodb',
    endpoint: engine.endpoint,
    table: engine.table,
    cache_ms: 100,
    timeout_ms: 200,
    retry_after_ms: 400,
    ...over,
  });

  it('shares a cooldown learnt by one proxy instance with another', async () => {
    // Prepare: two proxy instances on one table, one fake Gemini
    const one = await startHarness({ config: { state: state() } });
    const two = await startHarness({
      config: { state: state() },
      groups: () => [{ name: 'primary', api_keys: [...KEYS], target_url: one.fake.openAiBase }],
    });
    try {
      one.fake.setQuota(KEYS[0]!, { limit: 0, windowMs: 60_000, model: 'shared-model', retryDelay: '30s' });

      // Act: instance one hits key 0's 429 and cools it
      for (let i = 0; i < 20 && one.fake.callsFor(KEYS[0]!).length === 0; i++) {
        expect((await postChat(one, chatBody('shared-model'))).status).toBe(200);
      }
      await one.server.proxy.settle();
      const callsBefore = one.fake.callsFor(KEYS[0]!).length;
      await new Promise((r) => setTimeout(r, 150));
      for (let i = 0; i < 12; i++) expect((await postChat(two, chatBody('shared-model'))).status).toBe(200);

      // Assess: instance two never tried key 0
      expect(callsBefore).toBe(1);
      expect(one.fake.callsFor(KEYS[0]!)).toHaveLength(1);
      expect(leaks(one)).toEqual([]);
      expect(leaks(two)).toEqual([]);
    } finally {
      await two.close();
      await one.close();
    }
  });

  it('keeps answering within the bound while DynamoDB is down, and shares state again after', async () => {
    // Prepare
    const h: Harness = await startHarness({ config: { state: state() } });
    try {
      expect((await postChat(h, chatBody('fault-model'))).status).toBe(200);

      // Act 1: DynamoDB goes away mid-run
      await engine.stop();
      h.fake.setQuota(KEYS[1]!, { limit: 0, windowMs: 60_000, model: 'fault-model', retryDelay: '45s' });
      const durations: number[] = [];
      for (let i = 0; i < 8; i++) {
        const started = Date.now();
        const res = await postChat(h, chatBody('fault-model'));
        durations.push(Date.now() - started);
        expect(res.status).toBe(200);
      }

      // Assess 1: every request answered, none held much past the DynamoDB bound
      expect(Math.max(...durations)).toBeLessThan(1000);
      expect(h.logs.filter((l) => l.includes('shared state unavailable'))).toHaveLength(1);

      // Act 2: DynamoDB returns; after retry_after_ms the instance goes back to it
      await engine.start();
      await new Promise((r) => setTimeout(r, 450));
      for (let i = 0; i < 4; i++) expect((await postChat(h, chatBody('fault-model'))).status).toBe(200);
      await h.server.proxy.settle();
      await new Promise((r) => setTimeout(r, 100));

      // Assess 2: the cooldown learnt during the outage was replayed into the shared table
      const reader = new DynamoDbKeyStateStore({
        client: testClient(engine.endpoint),
        table: engine.table,
        cacheMs: 0,
        rotationShards: 1,
      });
      const [view] = await reader.describe('primary', [keyId(KEYS[1]!)]);
      expect(view?.cooldowns.get('fault-model')?.cause).toBe('rpm');
      expect(h.logs.some((l) => l.includes('replaying local updates'))).toBe(true);
    } finally {
      await engine.start();
      await h.close();
    }
  });

  it('bounds the wait on a DynamoDB that hangs, per request, and counts it down after 3 failures', async () => {
    // Prepare: every DynamoDB call will hang; 8 keys all answer 429 so the request makes many acquisitions
    const h = await startHarness({ config: { state: state({ timeout_ms: 150, retry_after_ms: 60_000 }) } });
    try {
      expect((await postChat(h, chatBody('hang-model'))).status).toBe(200);
      await engine.stall();
      for (const key of KEYS) h.fake.setQuota(key, { limit: 0, windowMs: 60_000, model: 'hang-model' });

      // Act: requests one after another
      const waits: number[] = [];
      const statuses: number[] = [];
      for (let i = 0; i < 4; i++) {
        const started = Date.now();
        statuses.push((await postChat(h, chatBody('hang-model'))).status);
        waits.push(Date.now() - started);
      }

      // Assess: each waits one bound at most, until the third unanswered call makes it an outage; from
      // then on, local state without waiting
      expect(statuses).toEqual([429, 429, 429, 429]);
      expect(waits[0]).toBeLessThan(150 + 300);
      expect(waits[1]).toBeLessThan(150 + 300);
      expect(waits[3]).toBeLessThan(100);
      expect(h.logs.filter((l) => l.includes('shared state unavailable'))).toHaveLength(1);
    } finally {
      await engine.start();
      await h.close();
    }
  });
});
