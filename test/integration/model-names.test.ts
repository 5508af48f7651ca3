import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MemoryKeyStateStore } from '../../lambda/adapters/state/memory-store.js';
import { type Harness, KEYS, MODEL, postChat, startHarness, TOKEN } from '../support/harness.js';

/** Cools `model` on every key: each answers one 429 asking for 50 s; then the fake forgets it all. */
async function coolEverywhere(h: Harness, model: string): Promise<void> {
  for (const key of KEYS) h.fake.setQuota(key, { limit: 0, windowMs: 60_000, model, retryDelay: '50s' });
  const res = await postChat(h, JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }] }));
  expect(res.status).toBe(429);
  expect(h.fake.calls).toHaveLength(KEYS.length);
  h.fake.reset();
}

function send(h: Harness, path: string, body: string | Buffer, contentType?: string) {
  return fetch(`${h.url}${path}`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${TOKEN}`,
      ...(contentType === undefined ? {} : { 'content-type': contentType }),
    },
    body,
  });
}

const messages = '"messages":[{"role":"user","content":"hi"}]';
const contents = '"contents":[{"parts":[{"text":"hi"}]}]';
const NATIVE = '/v1beta/models';

describe('Integration: model spellings against the real local server', () => {
  let h: Harness;

  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(async () => {
    await h.close();
  });

  // A `%3A` in the path or a method in another case is not a route the proxy forwards (404, route-access.ts);
  // the other spellings reach the model checks.
  it('answers every spelling of a cooling model itself (400, 404 or 429), and none reaches Gemini', async () => {
    // Prepare
    await coolEverywhere(h, MODEL);
    const bom = Buffer.concat([
      Buffer.from([0xef, 0xbb, 0xbf]),
      Buffer.from(`{"model":"${MODEL}",${messages}}`),
    ]);
    const variants: Array<[string, string, string | Buffer, string | undefined, number]> = [
      [
        'upper case',
        '/v1/chat/completions',
        `{"model":"Gemini-2.5-Flash",${messages}}`,
        'application/json',
        400,
      ],
      ['@ suffix', '/v1/chat/completions', `{"model":"${MODEL}@001",${messages}}`, 'application/json', 400],
      [
        'MODELS/ prefix',
        '/v1/chat/completions',
        `{"model":"MODELS/${MODEL}",${messages}}`,
        'application/json',
        400,
      ],
      ['spaces', '/v1/chat/completions', `{"model":" ${MODEL} ",${messages}}`, 'application/json', 400],
      [
        'models/ prefix',
        '/v1/chat/completions',
        `{"model":"models/${MODEL}",${messages}}`,
        'application/json',
        429,
      ],
      [
        'escaped',
        '/v1/chat/completions',
        `{"model":"gemini\\u002d2.5-flash",${messages}}`,
        'application/json',
        429,
      ],
      ['text/plain', '/v1/chat/completions', `{"model":"${MODEL}",${messages}}`, 'text/plain', 429],
      [
        'no content type',
        '/v1/chat/completions',
        Buffer.from(`{"model":"${MODEL}",${messages}}`),
        undefined,
        429,
      ],
      [
        'form type',
        '/v1/chat/completions',
        `{"model":"${MODEL}",${messages}}`,
        'application/x-www-form-urlencoded',
        429,
      ],
      ['byte-order mark', '/v1/chat/completions', bom, 'text/plain', 429],
      [
        'duplicate model',
        '/v1/chat/completions',
        `{"model":"gemini-2.5-pro","model":"${MODEL}",${messages}}`,
        'application/json',
        400,
      ],
      [
        'escaped duplicate',
        '/v1/chat/completions',
        `{"model":"gemini-2.5-pro","mo\\u0064el":"${MODEL}",${messages}}`,
        'application/json',
        400,
      ],
      [
        'utf-16',
        '/v1/chat/completions',
        Buffer.from(`{"model":"${MODEL}",${messages}}`, 'utf16le'),
        'application/json; charset=utf-16',
        400,
      ],
      ['no model', '/v1/chat/completions', `{${messages}}`, 'application/json', 400],
      ['embeddings', '/v1/embeddings', `{"model":"Gemini-2.5-Flash","input":"x"}`, 'application/json', 400],
      ['native', `${NATIVE}/${MODEL}:generateContent`, `{${contents}}`, 'application/json', 429],
      ['native %3A', `${NATIVE}/${MODEL}%3AgenerateContent`, `{${contents}}`, 'application/json', 404],
      [
        'native %3a stream',
        `${NATIVE}/${MODEL}%3astreamGenerateContent`,
        `{${contents}}`,
        'application/json',
        404,
      ],
      ['native %2F', `${NATIVE}/models%2F${MODEL}:generateContent`, `{${contents}}`, 'application/json', 400],
      [
        'native upper case',
        `${NATIVE}/Gemini-2.5-Flash:generateContent`,
        `{${contents}}`,
        'application/json',
        400,
      ],
      [
        'native encoded letter',
        `${NATIVE}/%67emini-2.5-flash:generateContent`,
        `{${contents}}`,
        'application/json',
        429,
      ],
      ['native method case', `${NATIVE}/${MODEL}:GenerateContent`, `{${contents}}`, 'application/json', 404],
      [
        'native body model',
        `${NATIVE}/gemini-2.5-pro:generateContent`,
        `{"model":"models/${MODEL}",${contents}}`,
        'application/json',
        400,
      ],
      ['native text/plain', `${NATIVE}/${MODEL}:streamGenerateContent`, `{${contents}}`, 'text/plain', 429],
    ];

    // Act
    const answers: string[] = [];
    for (const [name, path, body, type] of variants) {
      const res = await send(h, path, body, type);
      const error = ((await res.json()) as { error?: { code?: string } }).error;
      answers.push(`${name}: ${res.status} ${error?.code}`);
    }

    // Assess: each variant answered as expected by the proxy, Gemini never called
    expect(answers).toEqual(
      variants.map(([name, , , , status], i) => `${name}: ${status} ${answers[i]!.split(' ').pop()}`),
    );
    expect(h.fake.calls).toEqual([]);
    expect(answers.filter((a) => / 429 /.test(a)).every((a) => a.endsWith('keys_exhausted'))).toBe(true);
    const hint = await send(
      h,
      '/v1/chat/completions',
      `{"model":"Gemini-2.5-Flash",${messages}}`,
      'application/json',
    );
    expect(((await hint.json()) as { error: { message: string } }).error.message).toContain(
      'use gemini-2.5-flash',
    );
  });

  it('cools a model named constructor like any other', async () => {
    // Prepare: a name Object.prototype has (a plain-object state table once found it there, never cooling)
    const model = 'constructor';

    // Act
    await coolEverywhere(h, model);
    const res = await postChat(h, JSON.stringify({ model, messages: [{ role: 'user', content: 'x' }] }));

    // Assess: cooling, answered without Gemini, and shown in /health/detailed
    expect(res.status).toBe(429);
    expect(h.fake.calls).toEqual([]);
    const detailed = (await (
      await fetch(`${h.url}/health/detailed`, { headers: { authorization: `Bearer ${TOKEN}` } })
    ).json()) as { groups: Array<{ keys: Array<{ cooling: Record<string, unknown> }> }> };
    expect(detailed.groups[0]!.keys.every((k) => Object.hasOwn(k.cooling, model))).toBe(true);
  });

  it.each(['toString', '__proto__', 'hasOwnProperty'])(
    'refuses %s before it touches any state',
    async (model) => {
      // Not canonical (upper case, underscores): no Gemini model is named so; the stores' own tests show
      // such names would cool too.
      const res = await postChat(h, JSON.stringify({ model, messages: [] }));
      expect(res.status).toBe(400);
      expect(h.fake.calls).toEqual([]);
    },
  );
});

describe('Integration: models Gemini does not list', () => {
  let h: Harness;
  const store = new MemoryKeyStateStore();

  beforeAll(async () => {
    h = await startHarness({
      store,
      config: { upstream: { model_list_ms: 3_600_000 } },
      groups: (fake) => [
        {
          name: 'primary',
          api_keys: [...KEYS],
          target_url: fake.openAiBase,
          models: ['configured-model'],
          limits: { rpd: 1000 },
        },
      ],
    });
  });
  afterAll(async () => {
    await h.close();
  });
  afterEach(() => {
    h.fake.reset();
  });

  it('fails open until the list is read, then answers 404 for made-up names with no call and no state', async () => {
    // Act 1: the first request starts the list's read; it is not known yet, so the name is served
    const first = await postChat(h, JSON.stringify({ model: 'made-up-0', messages: [] }));
    expect(first.status).toBe(200);
    for (
      let i = 0;
      i < 100 && !h.fake.calls.some((c) => c.path === '/v1beta/models' && c.status === 200);
      i++
    )
      await new Promise((r) => setTimeout(r, 10));
    const listing = h.fake.calls.filter((c) => c.path === '/v1beta/models');
    expect(listing).toHaveLength(1);
    expect(listing[0]!.keyInQuery).toBe(false);
    h.fake.reset();
    const budgets = (store as unknown as { budgets: Map<string, unknown> }).budgets;
    const before = budgets.size;

    // Act 2: 300 made-up names
    const statuses = new Set<number>();
    const codes = new Set<string>();
    for (let i = 1; i <= 300; i++) {
      const res = await postChat(h, JSON.stringify({ model: `made-up-${i}`, messages: [] }));
      statuses.add(res.status);
      codes.add(((await res.json()) as { error: { code: string } }).error.code);
    }

    // Assess: 404 model_not_found, no Gemini call, no budget window; listed and configured models served
    expect([...statuses]).toEqual([404]);
    expect([...codes]).toEqual(['model_not_found']);
    expect(h.fake.calls).toEqual([]);
    expect(budgets.size).toBe(before);
    expect((await postChat(h)).status).toBe(200);
    expect((await postChat(h, JSON.stringify({ model: 'configured-model', messages: [] }))).status).toBe(200);
    const native = await fetch(`${h.url}/v1beta/models/made-up-1:generateContent`, {
      method: 'POST',
      headers: { 'x-goog-api-key': TOKEN, 'content-type': 'application/json' },
      body: '{"contents":[]}',
    });
    expect(native.status).toBe(404);
    expect(h.fake.calls.map((c) => c.model)).toEqual([MODEL, 'configured-model']);
  });
});
