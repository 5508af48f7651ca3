import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DynamoEngine, startDynamoEngine } from '../support/dynamo-engine.js';
import { chatBody, type Harness, KEYS, leaks, postChat, startHarness, TOKEN } from '../support/harness.js';

const LIMITED_TOKEN = 'client-token-limited-77';

describe.each(['memory', 'dynamodb'] as const)(
  'Integration: proactive quotas and client limits (%s state)',
  (store) => {
    let engine: DynamoEngine | undefined;
    let h: Harness;

    beforeAll(async () => {
      if (store === 'dynamodb') engine = await startDynamoEngine();
      h = await startHarness({
        config: {
          state:
            engine === undefined
              ? { store: 'memory' }
              : { store: 'dynamodb', endpoint: engine.endpoint, table: engine.table, cache_ms: 100 },
        },
        groups: (fake) => [
          {
            name: 'limited',
            // Keys 0 and 1 are one Google project: one budget between them.
            api_keys: [
              { key: KEYS[0], project: 'shared-project' },
              { key: KEYS[1], project: 'shared-project' },
              KEYS[2],
            ],
            limits: { rpm: 2 },
            target_url: fake.openAiBase,
          },
        ],
      });
    });
    afterAll(async () => {
      expect(leaks(h, [...KEYS, TOKEN, LIMITED_TOKEN])).toEqual([]);
      await h.close();
      await engine?.close();
    });

    it('serves up to the budget, then answers 429 with Retry-After without calling Gemini', async () => {
      // Act: budgets are 2 (project) + 2 (key 2) per minute for this model
      const statuses: number[] = [];
      for (let i = 0; i < 6; i++) statuses.push((await postChat(h, chatBody('quota-model'))).status);
      const refused = await postChat(h, chatBody('quota-model'));

      // Assess
      expect(statuses.slice(0, 4)).toEqual([200, 200, 200, 200]);
      expect(statuses.slice(4)).toEqual([429, 429]);
      expect(h.fake.calls).toHaveLength(4);
      expect(h.fake.calls.filter((c) => c.key === KEYS[0] || c.key === KEYS[1])).toHaveLength(2);
      expect(refused.status).toBe(429);
      const retryAfter = Number(refused.headers.get('retry-after'));
      expect(retryAfter).toBeGreaterThanOrEqual(1);
      expect(retryAfter).toBeLessThanOrEqual(60);
      expect(await refused.json()).toMatchObject({
        error: { code: 'keys_exhausted', type: 'rate_limit_error' },
      });
    });
  },
);

describe('Integration: per-client rate limits', () => {
  let h: Harness;

  beforeAll(async () => {
    h = await startHarness({ clientTokens: [TOKEN, { token: LIMITED_TOKEN, rpm: 2 }] });
  });
  afterAll(async () => {
    expect(leaks(h, [...KEYS, TOKEN, LIMITED_TOKEN])).toEqual([]);
    await h.close();
  });

  it('refuses a client over its rpm with 429 + Retry-After, leaving other clients alone', async () => {
    // Act
    const limited: number[] = [];
    for (let i = 0; i < 3; i++) {
      limited.push((await postChat(h, chatBody(), { authorization: `Bearer ${LIMITED_TOKEN}` })).status);
    }
    const refused = await postChat(h, chatBody(), { authorization: `Bearer ${LIMITED_TOKEN}` });
    const other = await postChat(h, chatBody());

    // Assess
    expect(limited).toEqual([200, 200, 429]);
    expect(refused.status).toBe(429);
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(await refused.json()).toMatchObject({
      error: { code: 'client_rate_limited', type: 'rate_limit_error' },
    });
    expect(other.status).toBe(200);
    expect(h.fake.calls).toHaveLength(3);
  });
});
