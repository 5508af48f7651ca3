import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { keyId } from '../../lambda/core/credentials.js';
import { nextPacificMidnight } from '../../lambda/core/pacific-time.js';
import {
  chatBody,
  type Harness,
  KEYS,
  keyIndexes,
  leaks,
  MODEL,
  postChat,
  startHarness,
  TOKEN,
} from '../support/harness.js';

interface KeyHealth {
  id: string;
  status: string;
  reason: string | null;
  cooling: Record<string, { until: string; cause: string }>;
}

async function health(h: Harness): Promise<KeyHealth[]> {
  const res = await fetch(`${h.url}/health/detailed`, { headers: { authorization: `Bearer ${TOKEN}` } });
  const body = (await res.json()) as { groups: Array<{ keys: KeyHealth[] }> };
  return body.groups.flatMap((g) => g.keys);
}

const keyHealth = async (h: Harness, index: number) =>
  (await health(h)).find((k) => k.id === keyId(KEYS[index]!))!;

describe('Integration: rotation and Gemini outcome policy', () => {
  let h: Harness;

  beforeAll(async () => {
    // These tests flood one upstream with 503s on purpose; the circuit breaker has its own tests.
    h = await startHarness({
      config: {
        policy: { transient_retry_delay_ms: 5, transient_cooldown_ms: 60_000, circuit_failure_threshold: 0 },
      },
    });
  });
  // A fresh proxy state per test: restart only the proxy side by resetting its store through a new harness
  // would be slow; instead each test uses a model of its own so cooldowns never leak between tests.
  let model = MODEL;
  let n = 0;
  beforeEach(() => {
    h.fake.reset();
    h.clock.now = undefined;
    model = `gemini-test-${++n}`;
  });
  afterAll(async () => {
    expect(leaks(h)).toEqual([]);
    await h.close();
  });

  it('spreads requests evenly over the keys', async () => {
    for (let i = 0; i < 40; i++) expect((await postChat(h, chatBody(model))).status).toBe(200);
    const counts = KEYS.map((_, i) => keyIndexes(h).filter((k) => k === i).length);
    expect(counts).toEqual([10, 10, 10, 10]);
  });

  it('cools only the key×model that got a 429, for RetryInfo’s delay', async () => {
    // Prepare: key 0 allows one request per minute for this model
    h.fake.setQuota(KEYS[0]!, { limit: 1, windowMs: 60_000, model, retryDelay: '30s' });

    // Act
    const statuses: number[] = [];
    for (let i = 0; i < 12; i++) statuses.push((await postChat(h, chatBody(model))).status);

    // Assess: every client request succeeded; key 0 was tried twice (one success, one 429) and then left out
    expect(statuses.every((s) => s === 200)).toBe(true);
    expect(h.fake.callsFor(KEYS[0]!).map((c) => c.status)).toEqual([200, 429]);
    const k0 = await keyHealth(h, 0);
    expect(k0.status).toBe('active');
    expect(k0.cooling[model]?.cause).toBe('rpm');
    const coolMs = Date.parse(k0.cooling[model]!.until) - Date.now();
    expect(coolMs).toBeGreaterThan(25_000);
    expect(coolMs).toBeLessThanOrEqual(30_000);

    // The same key still serves another model.
    const other = `${model}-other`;
    for (let i = 0; i < 4; i++) expect((await postChat(h, chatBody(other))).status).toBe(200);
    expect(h.fake.callsFor(KEYS[0]!).filter((c) => c.model === other)).toHaveLength(1);
  });

  it('parks a key×model until Pacific midnight on a per-day quota (injected clock)', async () => {
    // Prepare
    const now = Date.parse('2026-03-08T09:30:00Z'); // the day DST starts
    h.clock.now = now;
    h.fake.setQuota(KEYS[1]!, { limit: 0, windowMs: 86_400_000, kind: 'day', model });

    // Act
    for (let i = 0; i < 4; i++) expect((await postChat(h, chatBody(model))).status).toBe(200);

    // Assess
    const k1 = await keyHealth(h, 1);
    expect(k1.cooling[model]).toEqual({
      until: new Date(nextPacificMidnight(now)).toISOString(),
      cause: 'rpd',
    });
    expect(k1.cooling[model]?.until).toBe('2026-03-09T07:00:00.000Z');

    // Still parked a minute before midnight; back in rotation after it.
    h.fake.reset();
    h.clock.now = Date.parse('2026-03-09T06:59:00Z');
    for (let i = 0; i < 6; i++) await postChat(h, chatBody(model));
    expect(h.fake.callsFor(KEYS[1]!)).toHaveLength(0);
    h.clock.now = Date.parse('2026-03-09T07:00:01Z');
    for (let i = 0; i < 4; i++) await postChat(h, chatBody(model));
    expect(h.fake.callsFor(KEYS[1]!)).toHaveLength(1);
  });

  it('takes a dead key out of rotation after one hit, and scrubs the key Gemini quoted', async () => {
    // Prepare: the fake quotes the key in its CONSUMER_SUSPENDED message
    const dead = 'fake-key-suspended-99';
    const d = await startHarness({ keys: [dead, KEYS[0]!] });
    try {
      d.fake.killKey(dead, 'CONSUMER_SUSPENDED');

      // Act
      const statuses: number[] = [];
      for (let i = 0; i < 6; i++) statuses.push((await postChat(d, chatBody(model))).status);

      // Assess
      expect(statuses).toEqual([200, 200, 200, 200, 200, 200]);
      expect(d.fake.callsFor(dead)).toHaveLength(1);
      const res = await fetch(`${d.url}/health/detailed`, { headers: { authorization: `Bearer ${TOKEN}` } });
      const text = await res.text();
      expect(text).toContain('"reason":"CONSUMER_SUSPENDED"');
      expect(text).toContain('"invalid":1');
      expect(leaks(d, [dead, KEYS[0]!, TOKEN])).toEqual([]);
    } finally {
      await d.close();
    }
  });

  it('retries a 503 twice on the same key, then moves to the next key without invalidating it', async () => {
    // Prepare: a fresh proxy (rotation starts at key 0) whose key 0 answers 503 three times
    const t = await startHarness({ config: { policy: { transient_retry_delay_ms: 5 } } });
    try {
      t.fake.failNext(KEYS[0]!, 3, 503);

      // Act
      const res = await postChat(t, chatBody(model));

      // Assess
      expect(res.status).toBe(200);
      expect(keyIndexes(t)).toEqual([0, 0, 0, 1]);
      expect(t.metrics.at(-1)).toMatchObject({
        attempts: 4,
        retries: 2,
        keyCooldowns: 1,
        upstreamErrors: { transient: 3 },
      });
      const k0 = (await health(t)).find((k) => k.id === keyId(KEYS[0]!))!;
      expect(k0.status).toBe('active');
      expect(k0.cooling[model]?.cause).toBe('transient');
    } finally {
      await t.close();
    }
  });

  it('counts only the retries it made: none refused by the attempts bound', async () => {
    // Prepare: attempts run out on the second try of the second key
    const t = await startHarness({ config: { policy: { transient_retry_delay_ms: 1, max_attempts: 4 } } });
    try {
      for (const key of KEYS) t.fake.failNext(key, 100, 503);

      // Act
      const res = await postChat(t, chatBody(model));

      // Assess: calls 0 0 0 1 — three retries would be counted if the refused one were
      expect(res.status).toBe(503);
      expect(keyIndexes(t)).toEqual([0, 0, 0, 1]);
      expect(t.metrics.at(-1)).toMatchObject({ attempts: 4, retries: 2 });
    } finally {
      await t.close();
    }
  });

  it('answers 503 after bounded attempts when Gemini keeps failing', async () => {
    for (const key of KEYS) h.fake.failNext(key, 100, 503);
    const res = await postChat(h, chatBody(model));
    expect(res.status).toBe(503);
    expect(h.fake.calls.length).toBe(h.config.policy.max_attempts);
    expect(((await res.json()) as { error: { code: number } }).error.code).toBe(503);
    expect((await health(h)).every((k) => k.status === 'active')).toBe(true);
  });

  it('re-sends a generation that got no headers in time at most once, blaming no key, then answers 504', async () => {
    // Prepare: a short bound; keys 0, 1 and 2 never answer
    const t = await startHarness({
      config: {
        upstream: { first_byte_timeout_ms: 150, generation_first_byte_timeout_ms: 150 },
        policy: { transient_retry_delay_ms: 1, circuit_failure_threshold: 2 },
      },
    });
    try {
      for (const key of KEYS.slice(0, 3)) t.fake.hangNext(key);

      // Act
      const res = await postChat(t, chatBody(model));

      // Assess: two calls (not ten), no cooldown, no blame, no open circuit
      expect(res.status).toBe(504);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('upstream_timeout');
      expect(keyIndexes(t)).toEqual([0, 1]);
      expect(res.headers.get('x-upstream-attempts')).toBe('2');
      await vi.waitFor(() => expect(t.fake.aborted).toBe(2));
      const detailed = (await (
        await fetch(`${t.url}/health/detailed`, { headers: { authorization: `Bearer ${TOKEN}` } })
      ).json()) as { groups: Array<{ keys: Array<{ score: number; cooling: object }> }>; circuits: object[] };
      expect(
        detailed.groups[0]!.keys.every((k) => k.score === 1 && Object.keys(k.cooling).length === 0),
      ).toBe(true);
      expect(detailed.circuits).toEqual([]);
    } finally {
      await t.close();
    }
  });

  it('treats a first-byte timeout of a call that generates nothing as transient: moves on', async () => {
    // Prepare: keys 0 and 1 never answer a model listing
    const t = await startHarness({
      config: {
        upstream: { first_byte_timeout_ms: 150 },
        policy: { transient_retries: 0, transient_retry_delay_ms: 1 },
      },
    });
    try {
      t.fake.hangNext(KEYS[0]!);
      t.fake.hangNext(KEYS[1]!);

      // Act
      const res = await fetch(`${t.url}/v1/models`, { headers: { authorization: `Bearer ${TOKEN}` } });

      // Assess
      expect(res.status).toBe(200);
      expect(keyIndexes(t)).toEqual([0, 1, 2]);
      expect((await health(t)).every((k) => k.status === 'active')).toBe(true);
    } finally {
      await t.close();
    }
  });

  it('gives a generation answered whole longer for its headers than a streamed one', async () => {
    // Prepare: Gemini takes 400 ms before its headers on every call
    const t = await startHarness({
      config: { upstream: { first_byte_timeout_ms: 150, generation_first_byte_timeout_ms: 3000 } },
    });
    try {
      t.fake.options.responseDelayMs = 400;

      // Act
      const whole = await postChat(t, chatBody(model));
      const streamed = await postChat(t, chatBody(model, { stream: true }));

      // Assess: the whole answer waited; the stream gave up after one re-send
      expect(whole.status).toBe(200);
      expect(streamed.status).toBe(504);
      expect(keyIndexes(t)).toHaveLength(3);
    } finally {
      await t.close();
    }
  });

  it('returns a plain 400 untouched and leaves the key alone', async () => {
    // Act: no messages → Gemini's own INVALID_ARGUMENT
    const res = await postChat(h, JSON.stringify({ model }));
    const body = (await res.json()) as { error: { status: string } };

    // Assess
    expect(res.status).toBe(400);
    expect(body.error.status).toBe('INVALID_ARGUMENT');
    expect(h.fake.calls).toHaveLength(1);
    const used = keyIndexes(h)[0]!;
    expect(await keyHealth(h, used)).toMatchObject({ status: 'active', cooling: {} });
  });

  it('does not let a client kill keys with a 400 that echoes key-error wording', async () => {
    // Prepare: Gemini echoes the client's bad value in its message, with no details
    for (let i = 0; i < 4; i++) {
      h.fake.respondNext('*', {
        status: 400,
        body: {
          error: {
            code: 400,
            message: `Invalid value at 'generation_config.temperature' (TYPE_FLOAT), "API key not valid"`,
            status: 'INVALID_ARGUMENT',
          },
        },
      });
    }

    // Act
    const res = await postChat(h, chatBody(model, { temperature: 'API key not valid' }));

    // Assess
    expect(res.status).toBe(400);
    expect(h.fake.calls).toHaveLength(1);
    expect((await health(h)).every((k) => k.status === 'active')).toBe(true);
  });

  it('unwraps an array-wrapped error for OpenAI clients, in OpenAI’s shape', async () => {
    h.fake.respondNext('*', {
      status: 404,
      body: { error: { code: 404, message: 'models/x is not found', status: 'NOT_FOUND' } },
      arrayWrapped: true,
    });
    const res = await postChat(h, chatBody(model));
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({
      error: {
        message: 'models/x is not found',
        type: 'invalid_request_error',
        param: null,
        code: 404,
        status: 'NOT_FOUND',
      },
    });
  });

  it('answers 429 with Retry-After and calls no key once every key is cooling', async () => {
    // Prepare
    for (const key of KEYS) h.fake.setQuota(key, { limit: 0, windowMs: 60_000, model, retryDelay: '20s' });

    // Act
    const first = await postChat(h, chatBody(model));
    const callsAfterFirst = h.fake.calls.length;
    const second = await postChat(h, chatBody(model));

    // Assess
    expect(first.status).toBe(429);
    expect(callsAfterFirst).toBe(4);
    expect(second.status).toBe(429);
    expect(h.fake.calls.length).toBe(4);
    expect(first.headers.get('x-upstream-attempts')).toBe('4');
    expect(second.headers.get('x-upstream-attempts')).toBe('0');
    expect(h.metrics.slice(-2)).toEqual([
      expect.objectContaining({ status: 429, attempts: 4, keyCooldowns: 4, refusal: 'keys_exhausted' }),
      expect.objectContaining({ status: 429, attempts: 0, keyCooldowns: 0, refusal: 'keys_exhausted' }),
    ]);
    const retryAfter = Number(second.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThanOrEqual(19);
    expect(retryAfter).toBeLessThanOrEqual(20);
    expect(await second.json()).toMatchObject({
      error: { type: 'rate_limit_error', code: 'keys_exhausted' },
    });
  });

  it('waits for the soonest key instead of refusing when max_wait_ms allows', async () => {
    const w = await startHarness({
      keys: [KEYS[0]!],
      config: { policy: { max_wait_ms: 2000 } },
    });
    try {
      // Gemini's delay outlasts the fake's fixed window, as Gemini's does.
      w.fake.setQuota(KEYS[0]!, { limit: 1, windowMs: 500, model, retryDelay: '0.6s' });
      expect((await postChat(w, chatBody(model))).status).toBe(200);
      const started = Date.now();
      const res = await postChat(w, chatBody(model));
      expect(res.status).toBe(200);
      expect(Date.now() - started).toBeGreaterThanOrEqual(400);
      expect(w.fake.calls.map((c) => c.status)).toEqual([200, 429, 200]);
    } finally {
      await w.close();
    }
  });
});
