import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keyId } from '../../lambda/core/credentials.js';
import { nextPacificMidnight } from '../../lambda/core/pacific-time.js';
import { type DynamoEngine, startDynamoEngine } from '../support/dynamo-engine.js';
import type { FakeGemini } from '../support/fake-gemini.js';
import { chatBody, type Harness, KEYS, leaks, postChat, startHarness } from '../support/harness.js';

const FLASH = 'gemini-2.5-flash';
const PRO = 'gemini-2.5-pro';
/** A "minute" short enough for a test, long enough that a burst of requests stays inside one. */
const WINDOW_MS = 3000;

let groupSeq = 0;
/**
 * One group (named anew for each test: tests share a DynamoDB table), each key its own Google project,
 * named after its index: `p0` … `p3`.
 */
const projectGroups = (fake: FakeGemini, limits?: Record<string, unknown>, name = `g${++groupSeq}`) => [
  {
    name,
    api_keys: KEYS.map((key, i) => ({ key, project: `p${i}` })),
    target_url: fake.openAiBase,
    ...(limits && { limits }),
  },
];
const projects = Object.fromEntries(KEYS.map((key, i) => [`p${i}`, [key]]));

/** Waits until a fresh window has just begun, so that a burst of requests falls in one window. */
async function windowStart(): Promise<void> {
  await new Promise((r) => setTimeout(r, WINDOW_MS - (Date.now() % WINDOW_MS) + 20));
}

/** A user message of about `tokens` input tokens (4 characters each). */
const prompt = (tokens: number) =>
  chatBody(FLASH, { messages: [{ role: 'user', content: 'x'.repeat(tokens * 4) }] });

async function detailed(h: Harness): Promise<{ groups: Array<Record<string, unknown>> }> {
  const res = await fetch(`${h.url}/health/detailed`, {
    headers: { authorization: 'Bearer client-token-e2e-secret' },
  });
  return (await res.json()) as { groups: Array<Record<string, unknown>> };
}

describe.each([
  ['memory store', false],
  ['DynamoDB store (real engine)', true],
])('Integration: quota intelligence — %s', (_name, shared) => {
  let engine: DynamoEngine | undefined;
  beforeAll(async () => {
    if (shared) engine = await startDynamoEngine();
  });
  afterAll(async () => {
    await engine?.close();
  });
  const state = () =>
    engine === undefined
      ? {}
      : { state: { store: 'dynamodb', endpoint: engine.endpoint, table: engine.table, cache_ms: 100 } };

  it('parks keys whose project has no access to a model (limit 0): one wasted call each, then straight to the key that can', async () => {
    // Prepare: only p3's tier includes pro; flash is open to all
    const h = await startHarness({ config: state(), groups: (fake) => projectGroups(fake) });
    try {
      h.fake.setPlan({
        projects,
        models: { [PRO]: { rpm: 1000 }, [FLASH]: { rpm: 1000 } },
        projectModels: { p0: { [PRO]: { rpm: 0 } }, p1: { [PRO]: { rpm: 0 } }, p2: { [PRO]: { rpm: 0 } } },
      });

      // Act
      for (let i = 0; i < 12; i++) expect((await postChat(h, chatBody(PRO))).status).toBe(200);
      await h.server.proxy.settle();
      const proCalls = h.fake.calls.filter((c) => c.model === PRO);
      // 24: on DynamoDB each request advances one of 4 random rotation shards, so 8 need not reach every key
      for (let i = 0; i < 24; i++) expect((await postChat(h, chatBody(FLASH))).status).toBe(200);

      // Assess: at most one wasted call per other key; every later pro call went to key 3
      expect(h.fake.quotaRefusals.length).toBeLessThanOrEqual(3);
      for (const i of [0, 1, 2])
        expect(proCalls.filter((c) => c.key === KEYS[i]).length).toBeLessThanOrEqual(1);
      expect(proCalls.filter((c) => c.key === KEYS[3])).toHaveLength(12);
      const flashKeys = new Set(h.fake.calls.filter((c) => c.model === FLASH).map((c) => c.key));
      expect(flashKeys.size).toBe(4);
      const body = await detailed(h);
      const keys = body.groups[0]!.keys as Array<{
        id: string;
        cooling: Record<string, { cause: string; until: string }>;
      }>;
      const parked = keys.filter((k) => k.cooling[PRO]?.cause === 'unavailable');
      expect(parked.map((k) => k.id).sort()).toEqual([0, 1, 2].map((i) => keyId(KEYS[i]!)).sort());
      expect(parked[0]!.cooling[PRO]!.until).toBe(new Date(nextPacificMidnight(Date.now())).toISOString());
      expect(h.metrics.reduce((n, m) => n + (m.unavailableParks ?? 0), 0)).toBe(h.fake.quotaRefusals.length);
      expect(leaks(h)).toEqual([]);
    } finally {
      await h.close();
    }
  });

  it('answers model_unavailable (403) without a Gemini call once every key is parked for the model', async () => {
    const h = await startHarness({ config: state(), groups: (fake) => projectGroups(fake) });
    try {
      h.fake.setPlan({ projects, models: { [PRO]: { rpm: 0 } } });

      const first = await postChat(h, chatBody(PRO));
      const callsAfterFirst = h.fake.calls.length;
      await h.server.proxy.settle();
      const second = await postChat(h, chatBody(PRO));

      expect(first.status).toBe(403);
      expect(((await first.json()) as { error: { code: string } }).error.code).toBe('model_unavailable');
      expect(callsAfterFirst).toBe(4);
      expect(second.status).toBe(403);
      expect(second.headers.get('x-upstream-attempts')).toBe('0');
      expect(h.fake.calls.length).toBe(4);
      expect(h.metrics.at(-1)?.refusal).toBe('model_unavailable');
      // Flash is untouched.
      expect((await postChat(h, chatBody(FLASH))).status).toBe(200);
    } finally {
      await h.close();
    }
  });

  it("falls back to the next model once every key is parked for the client's, counting the parks", async () => {
    const h = await startHarness({
      config: { ...state(), fallbacks: { [PRO]: [FLASH] } },
      groups: (fake) => projectGroups(fake),
    });
    try {
      h.fake.setPlan({ projects, models: { [PRO]: { rpm: 0 }, [FLASH]: { rpm: 1000 } } });

      const first = await postChat(h, chatBody(PRO));
      await h.server.proxy.settle();
      const second = await postChat(h, chatBody(PRO));

      expect(first.status).toBe(200);
      expect(first.headers.get('x-gemini-model')).toBe(FLASH);
      expect(first.headers.get('x-upstream-attempts')).toBe('5');
      expect(h.metrics[0]).toMatchObject({ unavailableParks: 4, fallback: true });
      expect(second.status).toBe(200);
      expect(second.headers.get('x-upstream-attempts')).toBe('1');
      expect(h.fake.calls.filter((c) => c.model === PRO)).toHaveLength(4);
    } finally {
      await h.close();
    }
  });

  it('learns a per-minute limit from a 429 and spends no Gemini 429 in the next window', async () => {
    // Prepare: no limits configured; Gemini allows 3 requests per window per project
    const h = await startHarness({
      config: state(),
      groups: (fake) =>
        projectGroups(fake, { rpm_window_ms: WINDOW_MS }).map((g) => ({
          ...g,
          api_keys: g.api_keys.slice(0, 2),
        })),
    });
    try {
      h.fake.setPlan({ projects, models: { [FLASH]: { rpm: 3 } }, windowMs: WINDOW_MS });

      // Act: window 1 finds the limit (at most one 429 per project); window 2 is served within it
      await windowStart();
      const first = await Promise.all(Array.from({ length: 8 }, () => postChat(h, chatBody(FLASH))));
      await h.server.proxy.settle();
      const refusalsAfterFirst = h.fake.quotaRefusals.length;
      await windowStart();
      await new Promise((r) => setTimeout(r, 200)); // the DynamoDB cache (100 ms) has read the learned limit
      const second = [];
      for (let i = 0; i < 8; i++) second.push(await postChat(h, chatBody(FLASH)));

      // Assess
      expect(first.filter((r) => r.status === 200)).toHaveLength(6);
      // Concurrent requests meet the limit together before it is learned: a few 429s, once.
      expect(refusalsAfterFirst).toBeGreaterThan(0);
      expect(refusalsAfterFirst).toBeLessThanOrEqual(4);
      expect(second.filter((r) => r.status === 200)).toHaveLength(6);
      expect(h.fake.quotaRefusals.length).toBe(refusalsAfterFirst);
      const refused = second.filter((r) => r.status === 429);
      expect(refused.every((r) => r.headers.get('x-upstream-attempts') === '0')).toBe(true);
      const body = await detailed(h);
      expect(body.groups[0]!.learnedLimits).toEqual(
        expect.arrayContaining([expect.objectContaining({ budget: 'project:p0', model: FLASH, rpm: 3 })]),
      );
    } finally {
      await h.close();
    }
  });

  it('spreads large prompts so that no project passes its input-token window, and refuses one larger than any window', async () => {
    // Prepare: 2 projects of 1,000 input tokens a window; prompts of about 400 tokens
    const h = await startHarness({
      config: state(),
      groups: (fake) =>
        projectGroups(fake, { tpm: 1000, rpm_window_ms: WINDOW_MS }).map((g) => ({
          ...g,
          api_keys: g.api_keys.slice(0, 2),
        })),
    });
    try {
      h.fake.setPlan({ projects, models: { [FLASH]: { tpm: 1000 } }, windowMs: WINDOW_MS });

      await windowStart();
      const answers = [];
      for (let i = 0; i < 5; i++) answers.push(await postChat(h, prompt(400)));
      const oversize = await postChat(h, prompt(1200));

      expect(answers.map((r) => r.status)).toEqual([200, 200, 200, 200, 429]);
      expect(answers[4]!.headers.get('x-upstream-attempts')).toBe('0');
      expect(h.fake.quotaRefusals).toEqual([]);
      expect(h.metrics.at(-2)?.budgetRefusal).toBe('tpm');
      expect(oversize.status).toBe(400);
      expect(((await oversize.json()) as { error: { code: string } }).error.code).toBe('over_token_budget');
      expect(oversize.headers.get('x-upstream-attempts')).toBe('0');
      expect(h.metrics.at(-1)?.refusal).toBe('over_token_budget');
    } finally {
      await h.close();
    }
  });

  it("reconciles each claim with Gemini's own count: a refund makes room in the same window", async () => {
    // Prepare: one project of 1,000 tokens a window; Gemini counts half of what the proxy estimates
    const h = await startHarness({
      config: state(),
      groups: (fake) =>
        projectGroups(fake, { tpm: 1000, rpm_window_ms: WINDOW_MS }).map((g) => ({
          ...g,
          api_keys: g.api_keys.slice(0, 1),
        })),
    });
    try {
      h.fake.setPlan({ projects, models: { [FLASH]: { tpm: 1000 } }, windowMs: WINDOW_MS, tokenFactor: 0.5 });

      await windowStart();
      const answers = [];
      for (let i = 0; i < 5; i++) {
        answers.push(await postChat(h, prompt(400)));
        await h.server.proxy.settle();
      }

      // Each claim is 400 estimated, 200 counted. Claims alone fit 2 (a third would pass 1,000); with the
      // refunds, 4 fit (600 + 400), and the fifth (800 + 400) waits: all without a Gemini 429.
      expect(answers.map((r) => r.status)).toEqual([200, 200, 200, 200, 429]);
      expect(answers[4]!.headers.get('x-upstream-attempts')).toBe('0');
      expect(h.fake.quotaRefusals).toEqual([]);
    } finally {
      await h.close();
    }
  });
});

describe('Integration: quota intelligence shared by two proxies on one DynamoDB engine', () => {
  let engine: DynamoEngine;
  beforeAll(async () => {
    engine = await startDynamoEngine();
  });
  afterAll(async () => {
    await engine.close();
  });

  it('has the second proxy skip keys the first one parked, and hold to limits the first one learned', async () => {
    const state = {
      state: { store: 'dynamodb', endpoint: engine.endpoint, table: engine.table, cache_ms: 100 },
    };
    const one = await startHarness({
      config: state,
      groups: (fake) => projectGroups(fake, { rpm_window_ms: WINDOW_MS }, 'shared'),
    });
    const two = await startHarness({
      config: state,
      groups: () => projectGroups(one.fake, { rpm_window_ms: WINDOW_MS }, 'shared'),
    });
    try {
      one.fake.setPlan({
        projects,
        models: { [PRO]: { rpm: 1000 }, [FLASH]: { rpm: 2 } },
        projectModels: { p0: { [PRO]: { rpm: 0 } }, p1: { [PRO]: { rpm: 0 } }, p2: { [PRO]: { rpm: 0 } } },
        windowMs: WINDOW_MS,
      });

      // Act: proxy one meets the parks and the flash limit; proxy two comes after it
      await windowStart();
      for (let i = 0; i < 6; i++) await postChat(one, chatBody(PRO));
      for (let i = 0; i < 10; i++) await postChat(one, chatBody(FLASH));
      await one.server.proxy.settle();
      const refusalsOfOne = one.fake.quotaRefusals.length;
      await windowStart();
      await new Promise((r) => setTimeout(r, 200));
      const proStatuses = [];
      for (let i = 0; i < 6; i++) proStatuses.push((await postChat(two, chatBody(PRO))).status);
      const flashStatuses = [];
      for (let i = 0; i < 10; i++) flashStatuses.push((await postChat(two, chatBody(FLASH))).status);

      // Assess: proxy two made no call Gemini refused
      expect(refusalsOfOne).toBeGreaterThan(0);
      expect(proStatuses.every((s) => s === 200)).toBe(true);
      expect(flashStatuses.filter((s) => s === 200)).toHaveLength(8);
      expect(
        one.fake.quotaRefusals.slice(refusalsOfOne).map((r) => `${r.project} ${r.model} ${r.metrics}`),
      ).toEqual([]);
      expect(leaks(one)).toEqual([]);
      expect(leaks(two)).toEqual([]);
    } finally {
      await two.close();
      await one.close();
    }
  });
});
