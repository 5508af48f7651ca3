import { afterEach, describe, expect, it } from 'vitest';
import { chatBody, type Harness, KEYS, postChat, startHarness, TOKEN } from '../support/harness.js';

describe('Integration: circuit breaker per upstream target', () => {
  let h: Harness;

  afterEach(async () => {
    await h.close();
  });

  const start = (policy: Record<string, unknown> = {}) =>
    startHarness({
      config: {
        policy: {
          transient_retries: 0,
          transient_cooldown_ms: 0,
          transient_retry_delay_ms: 1,
          circuit_failure_threshold: 3,
          circuit_open_ms: 300,
          circuit_half_open_probes: 1,
          ...policy,
        },
      },
    });

  it('opens after 5xx of consecutive distinct requests, then refuses with 503 + Retry-After without calling Gemini', async () => {
    // Prepare
    h = await start();
    for (const key of KEYS) h.fake.failNext(key, 10, 503);

    // Act
    const failing = [];
    for (let i = 0; i < 3; i++) failing.push(await postChat(h, chatBody()));
    const callsWhenOpen = h.fake.calls.length;
    const refused = await postChat(h, chatBody());

    // Assess: a request counts once however many keys it failed on (4 + 4 calls); the third request's
    // first failure opened the circuit, which stopped it
    expect(failing.map((r) => r.status)).toEqual([503, 503, 503]);
    expect(callsWhenOpen).toBe(9);
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toBe('1');
    expect(await refused.json()).toMatchObject({ error: { code: 'circuit_open' } });
    expect(h.fake.calls.length).toBe(callsWhenOpen);
    const health = (await (
      await fetch(`${h.url}/health/detailed`, { headers: { authorization: `Bearer ${TOKEN}` } })
    ).json()) as { circuits: Array<{ state: string; consecutiveFailures: number }> };
    expect(health.circuits).toEqual([expect.objectContaining({ state: 'open', consecutiveFailures: 3 })]);
    // Metrics: the failing request counted its transient errors; the refusal is a circuit-open one.
    const [first, , , fourth] = h.metrics;
    expect(first).toMatchObject({
      status: 503,
      attempts: 4,
      upstreamErrors: { transient: 4, quota: 0, deadKey: 0 },
    });
    expect(fourth).toMatchObject({ status: 503, attempts: 0, refusal: 'circuit_open' });
  });

  it('lets a probe through after the open time and closes when it succeeds', async () => {
    // Prepare: one call per request; keys 0-2 fail once each (rotation takes them in order): three
    // failed requests open the circuit
    h = await start({ max_attempts: 1 });
    for (const key of KEYS.slice(0, 3)) h.fake.failNext(key, 1, 503);
    for (let i = 0; i < 3; i++) expect((await postChat(h, chatBody())).status).toBe(503);
    expect(await (await postChat(h, chatBody())).json()).toMatchObject({ error: { code: 'circuit_open' } });
    const callsWhileOpen = h.fake.calls.length;

    // Act: after the open time, one probe (key 3, healthy) goes through
    await new Promise((r) => setTimeout(r, 320));
    const probe = await postChat(h, chatBody());
    const after = await postChat(h, chatBody());

    // Assess
    expect(callsWhileOpen).toBe(3);
    expect(probe.status).toBe(200);
    expect(after.status).toBe(200);
  });

  it('is never opened by 429s or other 4xx', async () => {
    h = await start();
    for (const key of KEYS) h.fake.setQuota(key, { limit: 0, windowMs: 60_000, model: 'quota-model' });
    for (let i = 0; i < 3; i++) await postChat(h, chatBody('quota-model')); // 4 × 429
    for (let i = 0; i < 5; i++) await postChat(h, JSON.stringify({ model: 'gemini-2.5-flash' })); // 5 × 400
    const res = await postChat(h, chatBody());
    expect(res.status).toBe(200);
  });

  it('stops retrying a key once the circuit its failures opened is open', async () => {
    h = await startHarness({
      config: {
        policy: {
          transient_retries: 2,
          transient_retry_delay_ms: 1,
          circuit_failure_threshold: 1,
          circuit_open_ms: 60_000,
        },
      },
    });
    h.fake.failNext(KEYS[0]!, 5, 503);
    const res = await postChat(h, chatBody());
    expect(res.status).toBe(503);
    expect(h.fake.calls).toHaveLength(1);
  });
});
