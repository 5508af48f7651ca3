import { PutItemCommand, ScanCommand } from '@aws-sdk/client-dynamodb';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { onAnswer, stateClient } from '../../lambda/adapters/state/dynamodb/client.js';
import { parseStateConfig } from '../../lambda/core/config/parse.js';
import { type DynamoEngine, startDynamoEngine, testClient } from '../support/dynamo-engine.js';
import type { FakeGemini } from '../support/fake-gemini.js';
import { chatBody, type Harness, KEYS, postChat, startHarness, TOKEN } from '../support/harness.js';

const LIMITED_KEYS = KEYS.slice(0, 3);
const RPM = 5;
/** A second client token, limited to 100 requests a minute: each of its requests needs a claim. */
const RPM_TOKEN = 'client-token-with-rpm-secret';
const CLIENTS = [TOKEN, { token: RPM_TOKEN, rpm: 100 }];

interface ErrorBody {
  error?: { code?: string };
}

/** Waits until the current minute has at least `ms` left, so a test's budget window can't roll over. */
async function clearOfMinuteEnd(ms = 8000): Promise<void> {
  const left = 60_000 - (Date.now() % 60_000);
  if (left < ms) await new Promise((r) => setTimeout(r, left + 50));
}

describe('Integration: slow is not down — budgets on a slow or failing DynamoDB (real engine)', () => {
  let engine: DynamoEngine;
  const harnesses: Harness[] = [];

  beforeAll(async () => {
    engine = await startDynamoEngine();
  });
  afterEach(async () => {
    await engine.start();
    for (const h of harnesses.splice(0).reverse()) await h.close();
  });
  afterAll(async () => {
    await engine.close();
  });

  const state = (over: Record<string, unknown> = {}) => ({
    store: 'dynamodb',
    endpoint: engine.endpoint,
    table: engine.table,
    ...over,
  });

  /** A group of 3 keys with `limits: { rpm: 5 }` (15 requests a minute in all); optionally one without limits. */
  const groups = (fake: FakeGemini, limitedModel: string, openModel?: string) => [
    {
      name: `limited-${limitedModel}`,
      api_keys: LIMITED_KEYS,
      target_url: fake.openAiBase,
      models: [limitedModel],
      limits: { rpm: RPM },
    },
    ...(openModel === undefined
      ? []
      : [
          {
            name: `open-${openModel}`,
            api_keys: LIMITED_KEYS,
            target_url: fake.openAiBase,
            models: [openModel],
          },
        ]),
  ];

  async function instance(
    stateOver: Record<string, unknown>,
    limitedModel: string,
    options: { openModel?: string; fake?: FakeGemini; clientTokens?: unknown[] } = {},
  ): Promise<Harness> {
    const h = await startHarness({
      keys: LIMITED_KEYS,
      config: { state: state(stateOver) },
      groups: (own) => groups(options.fake ?? own, limitedModel, options.openModel),
      ...(options.clientTokens === undefined ? {} : { clientTokens: options.clientTokens }),
    });
    harnesses.push(h);
    return h;
  }

  it('grants exactly the shared budget when two fresh instances meet a slow engine', async () => {
    // Prepare: two fresh proxy instances (own DynamoDB clients, own fallback stores), default state
    // settings; the engine answers slowly for its first second (400–1,000 ms an answer)
    await clearOfMinuteEnd();
    const model = 'slow-start-model';
    const one = await instance({}, model);
    const two = await instance({}, model, { fake: one.fake });
    engine.slow(400, 1000, 1000);

    // Act: 40 concurrent requests, half to each instance
    const responses = await Promise.all(
      Array.from({ length: 40 }, (_, i) => postChat(i % 2 === 0 ? one : two, chatBody(model))),
    );
    const statuses = responses.map((r) => r.status);

    // Assess: 3 keys × 5 rpm = 15 granted across both instances; the rest refused without calling Gemini
    const granted = statuses.filter((s) => s === 200).length;
    expect({ granted, statuses: [...new Set(statuses)].sort() }).toEqual({
      granted: 15,
      statuses: [200, 429],
    });
    expect(one.fake.calls).toHaveLength(15);
    for (const h of [one, two]) {
      expect(h.logs.filter((l) => l.includes('shared state unavailable'))).toEqual([]);
    }
  });

  /** Requests counted in the model's budget windows, across keys, as DynamoDB holds them. */
  async function claimed(model: string): Promise<number> {
    const out = await testClient(engine.endpoint).send(new ScanCommand({ TableName: engine.table }));
    return (
      (out.Items ?? [])
        .map((i) => unmarshall(i))
        .filter((i) => String(i.pk).startsWith('quota#') && String(i.pk).endsWith(`#${model}`))
        // Requests are counted per window, as `m<window>`: all of them, whatever the window.
        .flatMap((i) => Object.entries(i).filter(([name]) => /^m\d+$/.test(name)))
        .reduce((sum, [, count]) => sum + Number(count), 0)
    );
  }

  it("hears DynamoDB's answers, errors included, but not a refused connection", async () => {
    // Prepare
    const client = stateClient(parseStateConfig(state()));
    let answers = 0;
    onAnswer(client, () => answers++);
    const put = (condition?: string) =>
      client.send(
        new PutItemCommand({
          TableName: engine.table,
          Item: { pk: { S: 'answers-probe' }, sk: { S: 'x' } },
          ConditionExpression: condition,
        }),
      );

    // Act + Assess
    try {
      await put();
      expect(answers).toBe(1);
      await expect(put('attribute_not_exists(pk)')).rejects.toThrow();
      expect(answers).toBe(2);
      await engine.stop();
      await expect(put()).rejects.toMatchObject({ code: 'ECONNREFUSED' });
      expect(answers).toBe(2);
    } finally {
      client.destroy();
    }
  });

  it('waits for one slow answer instead of switching to local state', async () => {
    // Prepare: a warm instance; DynamoDB then answers one request in 600 ms, past timeout_ms (250)
    await clearOfMinuteEnd();
    const model = 'one-slow-answer-model';
    const h = await instance({}, model);
    expect((await postChat(h, chatBody(model))).status).toBe(200);
    engine.slow(600, 600, 300);

    // Act
    const started = Date.now();
    const res = await postChat(h, chatBody(model));
    const waited = Date.now() - started;

    // Assess: served, after waiting for DynamoDB; the claim is in the shared window; still on shared state
    expect(res.status).toBe(200);
    expect(waited).toBeGreaterThanOrEqual(550);
    expect(await claimed(model)).toBe(2);
    expect(h.logs.filter((l) => l.includes('shared state unavailable'))).toEqual([]);
    expect(h.logs.filter((l) => l.includes('shared state call failed'))).toHaveLength(1);
  });

  it('serve_local: with DynamoDB down, limits are kept per instance from local budgets', async () => {
    // Prepare
    await clearOfMinuteEnd();
    const model = 'serve-local-model';
    const h = await instance({ on_outage: 'serve_local', retry_after_ms: 60_000 }, model);
    expect((await postChat(h, chatBody(model))).status).toBe(200);

    // Act: DynamoDB goes away (connections refused)
    await engine.stop();
    const statuses: number[] = [];
    const durations: number[] = [];
    for (let i = 0; i < 20; i++) {
      const started = Date.now();
      statuses.push((await postChat(h, chatBody(model))).status);
      durations.push(Date.now() - started);
    }

    // Assess: a refused connection is an outage at once; this instance's own budgets (3 × 5) then serve
    expect(statuses.filter((s) => s === 200)).toHaveLength(15);
    expect(statuses.slice(15)).toEqual([429, 429, 429, 429, 429]);
    expect(Math.max(...durations)).toBeLessThan(1000);
    const outage = h.logs.filter((l) => l.includes('shared state unavailable'));
    expect(outage).toHaveLength(1);
    expect(JSON.parse(outage[0]!)).toMatchObject({ error: 'Error', budgets: 'local' });
  });

  it('refuse: a model a group without limits also serves is served there while DynamoDB is down', async () => {
    // Prepare: the same model in a group with limits (first) and one without
    const model = 'refuse-shared-model';
    const h = await startHarness({
      keys: LIMITED_KEYS,
      config: { state: state({ on_outage: 'refuse', retry_after_ms: 60_000 }) },
      groups: (fake) => [
        {
          name: 'limited-shared',
          api_keys: LIMITED_KEYS,
          target_url: fake.openAiBase,
          models: [model],
          limits: { rpm: RPM },
        },
        { name: 'open-shared', api_keys: LIMITED_KEYS, target_url: fake.openAiBase, models: [model] },
      ],
    });
    harnesses.push(h);
    expect((await postChat(h, chatBody(model))).status).toBe(200);

    // Act: DynamoDB goes away
    await engine.stop();
    const res = await postChat(h, chatBody(model));

    // Assess: the limited group's claim is refused, the open group serves
    expect(res.status).toBe(200);
    expect(h.metrics.at(-1)).toMatchObject({ group: 'open-shared', refusal: undefined });
  });

  it('refuse: with DynamoDB down, requests that need a claim get 503 state_unavailable; others are served', async () => {
    // Prepare: a group with limits, one without, and a client token with its own rpm
    await clearOfMinuteEnd();
    const model = 'refuse-model';
    const open = 'refuse-open-model';
    const h = await instance({ on_outage: 'refuse', retry_after_ms: 400 }, model, {
      openModel: open,
      clientTokens: CLIENTS,
    });
    expect((await postChat(h, chatBody(model))).status).toBe(200);
    expect((await postChat(h, chatBody(open))).status).toBe(200);
    const calls = h.fake.calls.length;

    // Act: DynamoDB goes away
    await engine.stop();
    const limited = await postChat(h, chatBody(model));
    const unlimited = await postChat(h, chatBody(open));
    const limitedClient = await postChat(h, chatBody(open), { authorization: `Bearer ${RPM_TOKEN}` });

    // Assess: the claims are refused without calling Gemini, OpenAI-shaped, with Retry-After
    expect(limited.status).toBe(503);
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(await limited.json()).toMatchObject({
      error: { code: 'state_unavailable', type: 'server_error' },
    });
    expect(unlimited.status).toBe(200);
    expect(limitedClient.status).toBe(503);
    expect(((await limitedClient.json()) as ErrorBody).error?.code).toBe('state_unavailable');
    expect(h.fake.calls.length).toBe(calls + 1);
    expect(h.metrics.filter((m) => m.refusal === 'state_unavailable')).toHaveLength(2);
    expect(h.logs.filter((l) => l.includes('shared state unavailable'))).toHaveLength(1);

    // Act 2: DynamoDB comes back; after retry_after_ms claims are taken again
    await engine.start();
    await new Promise((r) => setTimeout(r, 450));
    expect((await postChat(h, chatBody(model))).status).toBe(200);
    expect(await claimed(model)).toBe(2);
  });

  it.each([
    ['refuse', 503],
    ['serve_local', 200],
  ] as const)(
    '%s: on a hung DynamoDB a claim waits at most its allowance; 3 failed calls make an outage',
    async (policy, status) => {
      // Prepare: a warm instance; then DynamoDB accepts connections and never answers
      await clearOfMinuteEnd();
      // Model names are lower-case letters, digits, dots and dashes: serve_local → serve-local.
      const model = `hung-${policy.replace('_', '-')}-model`;
      const open = `hung-${policy.replace('_', '-')}-open-model`;
      const h = await instance({ on_outage: policy, retry_after_ms: 60_000 }, model, { openModel: open });
      expect((await postChat(h, chatBody(model))).status).toBe(200);
      await engine.stall();
      const timed = async (m: string) => {
        const started = Date.now();
        const res = await postChat(h, chatBody(m));
        return {
          status: res.status,
          ms: Date.now() - started,
          code: ((await res.json()) as ErrorBody).error?.code,
        };
      };

      // Act: a claim, two requests of the group without limits, then a claim again
      const first = await timed(model);
      const second = await timed(open);
      const third = await timed(open);
      const fourth = await timed(model);

      // Assess: one unanswered call is no outage: the claim waited out its allowance
      // (cold_timeout_ms + 2 × timeout_ms = 2,500 ms) and was refused, whatever the policy
      expect(first).toMatchObject({ status: 503, code: 'state_unavailable' });
      expect(first.ms).toBeGreaterThanOrEqual(2400);
      expect(first.ms).toBeLessThan(3200);
      // Requests without a claim wait one timeout_ms (250 ms), then are served from local state
      for (const r of [second, third]) {
        expect(r.status).toBe(200);
        expect(r.ms).toBeGreaterThanOrEqual(200);
        expect(r.ms).toBeLessThan(800);
      }
      // The third failed call in a row made an outage: the policy now answers claims, without waiting
      expect(h.logs.filter((l) => l.includes('shared state unavailable'))).toHaveLength(1);
      expect(fourth.status).toBe(status);
      expect(fourth.ms).toBeLessThan(200);
    },
  );
});
