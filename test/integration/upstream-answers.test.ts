import OpenAI from 'openai';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { MemoryKeyStateStore } from '../../lambda/adapters/state/memory-store.js';
import { keyId } from '../../lambda/core/credentials.js';
import { nextPacificMidnight } from '../../lambda/core/pacific-time.js';
import {
  chatBody,
  type Harness,
  KEYS,
  leaks,
  MODEL,
  postChat,
  startHarness,
  TOKEN,
} from '../support/harness.js';

/** The longest Retry-After the proxy may send: the longest Pacific day (25 h), in seconds. */
const MAX_RETRY_AFTER = 25 * 3600;

function saneRetryAfter(value: string | null): boolean {
  return value !== null && /^[1-9]\d*$/.test(value) && Number(value) <= MAX_RETRY_AFTER;
}

async function detailed(h: Harness): Promise<Response> {
  return fetch(`${h.url}/health/detailed`, { headers: { authorization: `Bearer ${TOKEN}` } });
}

function postNative(h: Harness, body = JSON.stringify({ contents: [{ parts: [{ text: 'hi' }] }] })) {
  return fetch(`${h.url}/v1beta/models/${MODEL}:generateContent`, {
    method: 'POST',
    headers: { 'x-goog-api-key': TOKEN, 'content-type': 'application/json' },
    body,
  });
}

describe('Integration: upstream error bodies reach clients as JSON', () => {
  let h: Harness;

  beforeAll(async () => {
    // One call per request, so each scripted answer is the one the client gets.
    h = await startHarness({ config: { policy: { max_attempts: 1, circuit_failure_threshold: 0 } } });
  });
  beforeEach(() => h.fake.reset());
  afterAll(async () => {
    expect(leaks(h)).toEqual([]);
    await h.close();
  });

  const notJson: Array<[string, number, Record<string, string>, string]> = [
    [
      'a Google front-end text 503',
      503,
      { 'content-type': 'text/plain' },
      'upstream connect error or disconnect/reset before headers. reset reason: connection termination',
    ],
    [
      'an HTML 500 (quoting a key)',
      500,
      { 'content-type': 'text/html; charset=UTF-8' },
      `<html><body><h1>Error 500</h1><p>Server Error for ${KEYS[0]}</p></body></html>`,
    ],
    ['an empty 502', 502, {}, ''],
  ];

  it.each(notJson)(
    'answers %s on /v1/* in OpenAI’s error shape, status kept',
    async (_name, status, headers, raw) => {
      // Prepare
      h.fake.respondNext('*', { status, headers, raw });

      // Act
      const res = await postChat(h);
      const text = await res.text();

      // Assess
      expect(res.status).toBe(status);
      expect(res.headers.get('content-type')).toMatch(/^application\/json/);
      expect(JSON.parse(text)).toEqual({
        error: {
          message: expect.stringContaining(`Gemini answered ${status}`),
          type: 'server_error',
          param: null,
          code: 'upstream_error',
        },
      });
      if (raw !== '') expect(text).not.toContain(raw.slice(0, 20));
    },
  );

  it.each(notJson)(
    'makes the openai client raise an APIError for %s',
    async (_name, status, headers, raw) => {
      // Prepare
      h.fake.respondNext('*', { status, headers, raw });

      // Act
      const err = await h.openai.chat.completions
        .create({ model: MODEL, messages: [{ role: 'user', content: 'hi' }] })
        .then(
          () => undefined,
          (e: unknown) => e,
        );

      // Assess
      expect(err).toBeInstanceOf(OpenAI.APIError);
      const apiError = err as InstanceType<typeof OpenAI.APIError>;
      expect(apiError.status).toBe(status);
      expect(apiError.type).toBe('server_error');
      expect(apiError.code).toBe('upstream_error');
      expect(apiError.message).toContain(`Gemini answered ${status}`);
    },
  );

  it.each(notJson)(
    'answers %s on a native route in Gemini’s error shape',
    async (_name, status, headers, raw) => {
      // Prepare
      h.fake.respondNext('*', { status, headers, raw });

      // Act
      const res = await postNative(h);

      // Assess
      expect(res.status).toBe(status);
      expect(res.headers.get('content-type')).toMatch(/^application\/json/);
      expect(await res.json()).toEqual({
        error: {
          code: status,
          message: expect.stringContaining(`Gemini answered ${status}`),
          status: status === 500 ? 'INTERNAL' : 'UNAVAILABLE',
        },
      });
    },
  );

  it('adds OpenAI’s type and param to a Gemini JSON error on /v1/*, keeping code, status and details', async () => {
    // Prepare: the OpenAI-compatible endpoint's array-wrapped shape, with details
    const details = [{ '@type': 'type.googleapis.com/google.rpc.BadRequest', fieldViolations: [] }];
    h.fake.respondNext('*', {
      status: 400,
      body: { error: { code: 400, message: 'Bad temperature', status: 'INVALID_ARGUMENT', details } },
      arrayWrapped: true,
    });

    // Act
    const res = await postChat(h);

    // Assess
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({
      error: {
        message: 'Bad temperature',
        type: 'invalid_request_error',
        param: null,
        code: 400,
        status: 'INVALID_ARGUMENT',
        details,
      },
    });
  });

  it('scrubs a key Gemini quoted in a JSON error, and the openai client reads the error', async () => {
    // Prepare
    h.fake.respondNext('*', {
      status: 403,
      body: { error: { code: 403, message: `Key ${KEYS[1]} may not use this`, status: 'PERMISSION_DENIED' } },
    });

    // Act
    const err = (await h.openai.chat.completions
      .create({ model: MODEL, messages: [{ role: 'user', content: 'hi' }] })
      .catch((e: unknown) => e)) as InstanceType<typeof OpenAI.APIError>;

    // Assess
    expect(err).toBeInstanceOf(OpenAI.PermissionDeniedError);
    expect(err.type).toBe('invalid_request_error');
    expect(err.message).toContain('Key [redacted] may not use this');
  });

  it('keeps Gemini’s own JSON error shape on a native route', async () => {
    // Act: no contents → the fake's INVALID_ARGUMENT
    const res = await postNative(h, '{}');

    // Assess
    expect(res.status).toBe(400);
    const body = (await res.json()) as { error: Record<string, unknown> };
    expect(body.error).toMatchObject({ code: 400, status: 'INVALID_ARGUMENT' });
    expect(body.error).not.toHaveProperty('type');
  });

  it('replaces JSON that is not an error with a JSON error', async () => {
    h.fake.respondNext('*', { status: 503, body: ['not', 'an', 'error'] });
    const res = await postChat(h);
    expect(res.status).toBe(503);
    expect(await res.json()).toMatchObject({ error: { type: 'server_error', code: 'upstream_error' } });
  });

  it('passes on a Retry-After from Gemini only as a sane whole number of seconds', async () => {
    // Prepare
    const error = { error: { code: 503, message: 'The model is overloaded.', status: 'UNAVAILABLE' } };
    h.fake.respondNext('*', { status: 503, body: error, headers: { 'retry-after': '1e+23' } });
    h.fake.respondNext('*', { status: 503, body: error, headers: { 'retry-after': 'soon' } });
    h.fake.respondNext('*', { status: 503, body: error, headers: { 'retry-after': '7' } });

    // Act
    const huge = await postChat(h);
    const junk = await postChat(h);
    const fine = await postChat(h);

    // Assess
    expect(huge.status).toBe(503);
    expect(huge.headers.get('retry-after')).toBe(String(MAX_RETRY_AFTER));
    expect(junk.headers.get('retry-after')).toBeNull();
    expect(fine.headers.get('retry-after')).toBe('7');
  });
});

describe('Integration: delays read from Gemini are clamped', () => {
  let h: Harness;

  afterEach(async () => {
    await h.close();
  });

  it('takes an absurd RetryInfo.retryDelay as at most the next Pacific midnight; /health/detailed still answers', async () => {
    // Prepare: every key answers 429 with a 1e23-second RetryInfo (written out in digits, as a Duration is)
    h = await startHarness();
    for (const key of KEYS) {
      h.fake.setQuota(key, { limit: 0, windowMs: 60_000, retryDelay: `1${'0'.repeat(23)}s` });
    }

    // Act
    const first = await postChat(h);
    const second = await postChat(h);
    const health = await detailed(h);

    // Assess: cooled until Pacific midnight at most; Retry-After a sane integer
    expect(first.status).toBe(429);
    expect(saneRetryAfter(first.headers.get('retry-after'))).toBe(true);
    expect(second.status).toBe(429);
    expect(saneRetryAfter(second.headers.get('retry-after'))).toBe(true);
    expect(Number(second.headers.get('retry-after'))).toBeLessThanOrEqual(
      Math.ceil((nextPacificMidnight(Date.now()) - Date.now()) / 1000) + 1,
    );
    expect(health.status).toBe(200);
    const body = (await health.json()) as {
      groups: Array<{ keys: Array<{ cooling: Record<string, { until: string }> }> }>;
    };
    const untils = body.groups[0]!.keys.map((k) => Date.parse(k.cooling[MODEL]!.until));
    expect(untils.every((u) => u <= nextPacificMidnight(Date.now()))).toBe(true);
  });

  it('treats a retryDelay that is not a plain number of seconds as absent', async () => {
    h = await startHarness();
    for (const key of KEYS) h.fake.setQuota(key, { limit: 0, windowMs: 60_000, retryDelay: '1e+23s' });
    const res = await postChat(h);
    expect(res.status).toBe(429);
    expect(Number(res.headers.get('retry-after'))).toBeLessThanOrEqual(60);
    expect((await detailed(h)).status).toBe(200);
  });

  it('renders /health/detailed whatever the stored state holds (huge or NaN instants)', async () => {
    // Prepare: state as an old version or another instance may have written it
    const store = new MemoryKeyStateStore();
    const group = 'primary';
    const [a, b, c] = KEYS.map(keyId);
    await store.record({
      kind: 'cooldown',
      group,
      keyId: a!,
      model: MODEL,
      cooldown: { until: 1e26, cause: 'rpm' },
    });
    await store.record({
      kind: 'cooldown',
      group,
      keyId: b!,
      model: MODEL,
      cooldown: { until: Number.NaN, cause: 'rpm' },
    });
    await store.record({ kind: 'checked', group, keyId: c!, outcome: 'valid', at: 1e26 });
    h = await startHarness({ store });

    // Act
    const health = await detailed(h);
    const refused = await postChat(h, chatBody(MODEL));

    // Assess
    expect(health.status).toBe(200);
    const body = (await health.json()) as {
      groups: Array<{ keys: Array<{ id: string; cooling: Record<string, unknown>; lastCheck: unknown }> }>;
    };
    const keys = Object.fromEntries(body.groups[0]!.keys.map((k) => [k.id, k]));
    expect(keys[a!]!.cooling[MODEL]).toEqual({ until: null, cause: 'rpm' });
    expect(keys[c!]!.lastCheck).toEqual({ outcome: 'valid', at: null });
    expect(refused.status).toBe(200);
  });
});

describe('Integration: a request Gemini fails on every key (poisoned) is not an outage', () => {
  let h: Harness;
  const OTHER = 'client-token-other-client';

  afterEach(async () => {
    await h.close();
  });

  it('answers the 500 after two keys, and the next clean request of another client is served', async () => {
    // Prepare: default policy (5 failures open the circuit, 2 retries per key); this body fails everywhere
    h = await startHarness({ clientTokens: [TOKEN, OTHER] });
    h.fake.failWhenBodyContains('POISON', 500);

    // Act
    const poisoned = await postChat(h, chatBody(MODEL, { user: 'POISON' }));
    const poisonedCalls = h.fake.calls.length;
    const clean = await postChat(h, chatBody(MODEL), { authorization: `Bearer ${OTHER}` });

    // Assess
    expect(poisoned.status).toBe(500);
    expect(await poisoned.json()).toMatchObject({
      error: { code: 500, status: 'INTERNAL', type: 'server_error' },
    });
    expect(poisonedCalls).toBe(2);
    expect(poisoned.headers.get('x-upstream-attempts')).toBe('2');
    expect(new Set(h.fake.calls.slice(0, 2).map((c) => c.key)).size).toBe(2);
    expect(clean.status).toBe(200);
    const health = (await (await detailed(h)).json()) as {
      groups: Array<{ keys: Array<{ score: number; cooling: object }> }>;
      circuits: Array<{ state: string }>;
    };
    expect(health.circuits.every((c) => c.state === 'closed')).toBe(true);
    // No key was charged or cooled for it.
    expect(health.groups[0]!.keys.every((k) => k.score === 1 && Object.keys(k.cooling).length === 0)).toBe(
      true,
    );
  });

  it('counts a request once towards the circuit, however many keys it failed on', async () => {
    // Prepare: a poisoned request per client slot, four in a row; the circuit needs five
    h = await startHarness({ clientTokens: [TOKEN, OTHER] });
    h.fake.failWhenBodyContains('POISON', 500);

    // Act
    for (let i = 0; i < 4; i++)
      expect((await postChat(h, chatBody(MODEL, { user: 'POISON' }))).status).toBe(500);
    const clean = await postChat(h, chatBody(MODEL), { authorization: `Bearer ${OTHER}` });

    // Assess
    expect(h.fake.calls.filter((c) => c.status === 500)).toHaveLength(8);
    expect(clean.status).toBe(200);
  });

  it('still opens the circuit when five distinct requests fail (a genuine outage)', async () => {
    // Prepare: Gemini fails everything; no cooldowns, two calls per request
    h = await startHarness({
      config: { policy: { transient_retries: 0, transient_cooldown_ms: 0, max_attempts: 2 } },
    });
    for (const key of KEYS) h.fake.failNext(key, 100, 503);

    // Act
    const answers = [];
    for (let i = 0; i < 6; i++) answers.push(await postChat(h));

    // Assess: five requests reached Gemini and failed; the sixth was refused without calling it
    const codes = await Promise.all(
      answers.map(async (r) => ((await r.json()) as { error: { code: unknown } }).error.code),
    );
    expect(answers.map((r) => r.status)).toEqual([503, 503, 503, 503, 503, 503]);
    expect(answers.map((r) => r.headers.get('x-upstream-attempts'))).toEqual(['2', '2', '2', '2', '1', '0']);
    expect(codes.at(-1)).toBe('circuit_open');
    expect(saneRetryAfter(answers[5]!.headers.get('retry-after'))).toBe(true);
  });

  it('opens the circuit on a 500 outage too, one count per request', async () => {
    h = await startHarness();
    for (const key of KEYS) h.fake.failNext(key, 100, 500);
    const statuses = [];
    for (let i = 0; i < 6; i++) statuses.push((await postChat(h)).status);
    expect(statuses).toEqual([500, 500, 500, 500, 500, 503]);
    expect(h.fake.calls).toHaveLength(9); // the fifth request's first failure opened it
  });
});
