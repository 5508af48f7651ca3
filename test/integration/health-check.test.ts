import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoDbKeyStateStore } from '../../lambda/adapters/state/dynamodb/store.js';
import { NodeUpstreamClient } from '../../lambda/adapters/upstream-http.js';
import { keyId } from '../../lambda/core/credentials.js';
import { HEALABLE_REASONS, runHealthCheck } from '../../lambda/core/health-check.js';
import type { KeyStateStore } from '../../lambda/core/key-state/port.js';
import { type DynamoEngine, startDynamoEngine, testClient } from '../support/dynamo-engine.js';
import { type FakeGemini, startFakeGemini } from '../support/fake-gemini.js';

const K = {
  valid: 'fake-key-hc-valid-01',
  dead: 'fake-key-hc-dead-002',
  healed: 'fake-key-hc-healed-3',
  leaked: 'fake-key-hc-leaked-4',
  disabled: 'fake-key-hc-disab-05',
  limited: 'fake-key-hc-quota-06',
  flaky: 'fake-key-hc-flaky-07',
  refused: 'fake-key-hc-region-8',
};

describe('Integration: the scheduled key check against a fake Gemini and a real engine', () => {
  let engine: DynamoEngine;
  let fake: FakeGemini;
  let store: KeyStateStore;
  const upstream = new NodeUpstreamClient();
  let seq = 0;

  beforeAll(async () => {
    engine = await startDynamoEngine();
    fake = await startFakeGemini({ keys: Object.values(K) });
    store = new DynamoDbKeyStateStore({
      client: testClient(engine.endpoint),
      table: engine.table,
      cacheMs: 0,
      rotationShards: 1,
    });
  });
  afterAll(async () => {
    upstream.close();
    await fake.close();
    await engine.close();
  });

  const run = (group: string, keys: string[], budgetMs = 5000) =>
    runHealthCheck({
      groups: [{ name: group, keys: new Map(keys.map((k) => [keyId(k), k])) }],
      store,
      upstream,
      nativeBaseUrl: fake.url,
      concurrency: 3,
      budgetMs,
      now: Date.now,
    });

  it('changes state exactly as each outcome says', async () => {
    // Prepare
    const group = `hc${++seq}`;
    const id = (k: string) => keyId(k);
    const now = Date.now();
    fake.killKey(K.dead, 'CONSUMER_SUSPENDED');
    await store.record({ kind: 'invalid', group, keyId: id(K.healed), reason: 'SERVICE_DISABLED' });
    await store.record({ kind: 'invalid', group, keyId: id(K.leaked), reason: 'LEAKED' });
    await store.record({ kind: 'operator', group, keyId: id(K.disabled), status: 'disabled' });
    const cooldown = { until: now + 60_000, cause: 'rpm' as const };
    await store.record({
      kind: 'cooldown',
      group,
      keyId: id(K.limited),
      model: 'gemini-2.5-flash',
      cooldown,
    });
    fake.respondNext(K.limited, {
      status: 429,
      body: { error: { code: 429, message: 'Resource has been exhausted', status: 'RESOURCE_EXHAUSTED' } },
    });
    fake.failNext(K.flaky, 1, 503);
    // A region-wide refusal: a 4xx that says nothing about the key.
    fake.respondNext(K.refused, {
      status: 400,
      body: {
        error: {
          code: 400,
          message: 'User location is not supported for the API use.',
          status: 'FAILED_PRECONDITION',
        },
      },
    });
    const ended = { until: now - 1000, cause: 'rpm' as const };
    await store.record({
      kind: 'cooldown',
      group,
      keyId: id(K.valid),
      model: 'gemini-2.5-pro',
      cooldown: ended,
    });

    // Act
    const result = await run(group, Object.values(K));

    // Assess
    const outcome = Object.fromEntries(result.checks.map((c) => [c.keyId, c.outcome]));
    expect(outcome).toEqual({
      [id(K.valid)]: 'valid',
      [id(K.dead)]: 'dead',
      [id(K.healed)]: 'valid',
      [id(K.leaked)]: 'valid',
      [id(K.disabled)]: 'valid',
      [id(K.limited)]: 'quota',
      [id(K.flaky)]: 'transient',
      [id(K.refused)]: 'client_error',
    });
    const views = Object.fromEntries(
      (await store.describe(group, Object.values(K).map(id))).map((v) => [v.keyId, v]),
    );
    expect(views[id(K.dead)]).toMatchObject({ status: 'invalid', reason: 'CONSUMER_SUSPENDED' });
    expect(views[id(K.healed)]).toMatchObject({ status: 'active' });
    expect(views[id(K.leaked)]).toMatchObject({ status: 'invalid', reason: 'LEAKED' });
    expect(views[id(K.disabled)]).toMatchObject({ status: 'disabled' });
    expect(views[id(K.limited)]?.cooldowns.get('gemini-2.5-flash')).toEqual(cooldown);
    expect(views[id(K.flaky)]).toMatchObject({
      status: 'active',
      cooldowns: new Map(),
      lastCheck: { outcome: 'transient' },
    });
    expect(views[id(K.refused)]).toMatchObject({ status: 'active', lastCheck: { outcome: 'client_error' } });
    expect(views[id(K.valid)]?.lastCheck?.outcome).toBe('valid');
    expect(views[id(K.valid)]?.cooldowns).toEqual(new Map()); // its ended cooldown was cleared
    expect(result.groups).toEqual([{ group, total: 8, healthy: 4, cooling: 1, invalid: 2, disabled: 1 }]);
    // No key ever went upstream in a URL; each check was one cheap listing call.
    const calls = fake.calls.filter((c) => c.path === '/v1beta/models');
    expect(calls.every((c) => !c.keyInQuery && c.query === 'pageSize=1')).toBe(true);
    fake.reset();
  });

  it('does not undo a concurrent proxy update or an operator disable', async () => {
    const group = `hc${++seq}`;
    const id = keyId(K.healed);
    await store.record({ kind: 'invalid', group, keyId: id, reason: 'SERVICE_DISABLED' });
    const cooldown = { until: Date.now() + 30_000, cause: 'rpm' as const };
    // The checker revives the key while the proxy cools it for a model: both stand.
    await Promise.all([
      run(group, [K.healed]),
      store.record({ kind: 'cooldown', group, keyId: id, model: 'm', cooldown }),
    ]);
    const [view] = await store.describe(group, [id]);
    expect(view).toMatchObject({ status: 'active' });
    expect(view?.cooldowns.get('m')).toEqual(cooldown);

    // The checker finds a key dead while the operator disables it: disabled wins.
    fake.killKey(K.dead, 'LEAKED');
    await Promise.all([
      run(group, [K.dead]),
      store.record({ kind: 'operator', group, keyId: keyId(K.dead), status: 'disabled' }),
    ]);
    expect((await store.describe(group, [keyId(K.dead)]))[0]).toMatchObject({ status: 'disabled' });
    fake.reset();
  });

  it('stops at its time budget and reports the keys it did not reach', async () => {
    const group = `hc${++seq}`;
    for (const k of Object.values(K)) fake.hangNext(k);
    const started = Date.now();
    const result = await run(group, Object.values(K), 200);
    expect(Date.now() - started).toBeLessThan(1500);
    expect(result.checks.every((c) => c.outcome === 'skipped')).toBe(true);
    expect(HEALABLE_REASONS).not.toContain('LEAKED');
    fake.reset();
  });

  it('notes a key it could not reach as unreachable, which blames no key', async () => {
    // Prepare: Gemini's address answers nothing (a closed port)
    const group = `hc${++seq}`;
    const closed = await new Promise<number>((resolve) => {
      const probe = net.createServer().listen(0, '127.0.0.1', () => {
        const { port } = probe.address() as net.AddressInfo;
        probe.close(() => resolve(port));
      });
    });

    // Act
    const result = await runHealthCheck({
      groups: [{ name: group, keys: new Map([[keyId(K.valid), K.valid]]) }],
      store,
      upstream,
      nativeBaseUrl: `http://127.0.0.1:${closed}`,
      concurrency: 1,
      budgetMs: 5000,
      now: Date.now,
    });

    // Assess
    expect(result.checks.map((c) => c.outcome)).toEqual(['unreachable']);
    const [view] = await store.describe(group, [keyId(K.valid)]);
    expect(view).toMatchObject({ status: 'active', lastCheck: { outcome: 'unreachable' } });
  });
});
