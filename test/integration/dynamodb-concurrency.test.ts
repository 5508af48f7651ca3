import { ScanCommand } from '@aws-sdk/client-dynamodb';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoDbKeyStateStore } from '../../lambda/adapters/state/dynamodb/store.js';
import type { Acquisition, KeyRef } from '../../lambda/core/key-state/port.js';
import { countCalls } from '../support/call-counter.js';
import { type DynamoEngine, startDynamoEngine, testClient } from '../support/dynamo-engine.js';

const INSTANCES = 8;
const SELECTIONS = 480;

describe('Integration: DynamoDB store shared by 8 instances (real engine)', () => {
  let engine: DynamoEngine;

  beforeAll(async () => {
    engine = await startDynamoEngine();
  });
  afterAll(async () => {
    await engine.close();
  });

  /** Eight stores with their own clients and caches, as eight Lambda instances would have. */
  function instances(cacheMs = 200) {
    return Array.from(
      { length: INSTANCES },
      () =>
        new DynamoDbKeyStateStore({
          client: testClient(engine.endpoint),
          table: engine.table,
          cacheMs,
          rotationShards: 4,
        }),
    );
  }

  const keyRefs = (n: number, project?: (i: number) => string): KeyRef[] =>
    Array.from({ length: n }, (_, i) => ({ keyId: `key${i}`, budget: project?.(i) ?? `key:key${i}` }));

  async function tableItems(prefix: string): Promise<Array<Record<string, unknown>>> {
    const out = await testClient(engine.endpoint).send(new ScanCommand({ TableName: engine.table }));
    return (out.Items ?? []).map((i) => unmarshall(i)).filter((i) => String(i.pk).startsWith(prefix));
  }

  it('rotates evenly with no lost counter updates under concurrent selections', async () => {
    // Prepare
    const stores = instances();
    const group = 'even';
    const keys = keyRefs(8);

    // Act: 480 selections at once, spread over the 8 instances
    const results = await Promise.all(
      Array.from({ length: SELECTIONS }, (_, i) =>
        stores[i % INSTANCES]!.acquire({ group, keys, model: 'm', now: Date.now(), exclude: new Set() }),
      ),
    );

    // Assess: every counter increment landed, and each key got 60 ± 10 %
    const shards = await tableItems(`rr#${group}#`);
    expect(shards.reduce((sum, s) => sum + Number(s.pos), 0)).toBe(SELECTIONS);
    const perKey = new Map<string, number>();
    for (const r of results) if (r.kind === 'key') perKey.set(r.keyId, (perKey.get(r.keyId) ?? 0) + 1);
    expect(perKey.size).toBe(8);
    for (const count of perKey.values()) {
      expect(count).toBeGreaterThanOrEqual(SELECTIONS / 8 - SELECTIONS / 80);
      expect(count).toBeLessThanOrEqual(SELECTIONS / 8 + SELECTIONS / 80);
    }
  });

  it('never exceeds a quota by even one request, per key and per shared project', async () => {
    // Prepare: 8 keys, two pairs sharing a project; 10 requests per minute per budget
    const stores = instances();
    const group = 'quota';
    const keys = keyRefs(8, (i) => (i < 4 ? `project:quota-p${Math.floor(i / 2)}` : `key:quota-key${i}`));
    const budgets = new Set(keys.map((k) => k.budget)).size; // 6
    const now = Date.now();

    // Act
    const results = await Promise.all(
      Array.from({ length: SELECTIONS }, (_, i) =>
        stores[i % INSTANCES]!.acquire({
          group,
          keys,
          model: 'm',
          now,
          exclude: new Set(),
          limits: { rpm: 10 },
        }),
      ),
    );

    // Assess: exactly 10 per budget were granted; the rest were refused with the next minute
    const granted = results.filter((r): r is Extract<Acquisition, { kind: 'key' }> => r.kind === 'key');
    expect(granted).toHaveLength(budgets * 10);
    const perBudget = new Map<string, number>();
    for (const g of granted) {
      const budget = keys.find((k) => k.keyId === g.keyId)!.budget;
      perBudget.set(budget, (perBudget.get(budget) ?? 0) + 1);
    }
    expect([...perBudget.values()]).toEqual(Array(budgets).fill(10));
    const refused = results.filter((r) => r.kind === 'unavailable');
    const nextMinute = (Math.floor(now / 60_000) + 1) * 60_000;
    expect(
      refused.every((r) => r.kind === 'unavailable' && r.retryAt === nextMinute && r.cause === 'quota'),
    ).toBe(true);
    const windows = (await tableItems('quota#')).filter((w) => /quota-(p|key)\d/.test(String(w.pk)));
    // Each budget's requests this minute: its `m<minute>` count
    const minuteKey = `m${Math.floor(now / 60_000)}`;
    expect(windows.map((w) => Number(w[minuteKey])).sort()).toEqual(Array(budgets).fill(10));
  });

  it('holds the limit in every window while windows roll over under load', async () => {
    // Prepare: 300 ms windows, 5 per window per key; 8 instances selecting back to back for ~1.5 s
    const stores = instances();
    const keys = keyRefs(3, (i) => `key:roll${i}`);
    const limits = { rpm: 5, windowMs: 300 };
    const granted = new Map<string, number>();
    const until = Date.now() + 1500;

    // Act
    await Promise.all(
      stores.map(async (store) => {
        while (Date.now() < until) {
          const now = Date.now();
          const r = await store.acquire({ group: 'roll', keys, model: 'm', now, exclude: new Set(), limits });
          if (r.kind === 'key') {
            const slot = `${r.keyId}@${Math.floor(now / 300)}`;
            granted.set(slot, (granted.get(slot) ?? 0) + 1);
          } else {
            await new Promise((resolve) => setTimeout(resolve, 5));
          }
        }
      }),
    );

    // Assess: windows were filled (the load was real) and none got more than its 5
    expect(granted.size).toBeGreaterThanOrEqual(3 * 4);
    expect(Math.max(...granted.values())).toBe(5);
  });

  it('never exceeds a daily limit under concurrency', async () => {
    const stores = instances();
    const keys = keyRefs(2, (i) => `key:daily${i}`);
    const now = Date.now();
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        stores[i % INSTANCES]!.acquire({
          group: 'daily',
          keys,
          model: 'm',
          now,
          exclude: new Set(),
          limits: { rpd: 15 },
        }),
      ),
    );
    expect(results.filter((r) => r.kind === 'key')).toHaveLength(30);
  });

  it('never passes an input-token window under concurrency, with mixed prompt sizes', async () => {
    // Prepare: two budgets of 10,000 tokens a window; 200 claims of 100 to 2,000 tokens at once
    const stores = instances();
    const keys = keyRefs(2, (i) => `key:tokens${i}`);
    const now = Date.now();
    const sizes = Array.from({ length: 200 }, (_, i) => 100 + ((i * 733) % 1901));

    // Act
    const results = await Promise.all(
      sizes.map((tokens, i) =>
        stores[i % INSTANCES]!.acquire({
          group: 'tokens',
          keys,
          model: 'm',
          now,
          exclude: new Set(),
          limits: { tpm: 10_000 },
          tokens,
        }),
      ),
    );

    // Assess: per budget, the tokens granted (and the stored count) stay within the window
    const granted = new Map<string, number>();
    results.forEach((r, i) => {
      if (r.kind === 'key') granted.set(r.keyId, (granted.get(r.keyId) ?? 0) + sizes[i]!);
    });
    const items = await tableItems('quota#key:tokens');
    expect(items).toHaveLength(2);
    // The window's tokens are `t<window>` (all claims fell in one window, but a run may cross one)
    const tokensOf = (item: Record<string, unknown>) =>
      Object.entries(item)
        .filter(([name]) => /^t\d+$/.test(name))
        .map(([, v]) => Number(v));
    for (const item of items) for (const t of tokensOf(item)) expect(t).toBeLessThanOrEqual(10_000);
    for (const total of granted.values()) expect(total).toBeLessThanOrEqual(10_000);
    expect([...granted.values()].reduce((a, b) => a + b, 0)).toBe(
      items.reduce((a, i) => a + tokensOf(i).reduce((x, y) => x + y, 0), 0),
    );
    // And the windows are well used: more than half of each is granted.
    for (const total of granted.values()) expect(total).toBeGreaterThan(5_000);
  });

  it('keeps a budget item small: counts of windows before the last one are dropped, gaps included', async () => {
    const [store] = instances();
    const keys = keyRefs(1, () => 'key:sparse');
    const limits = { rpm: 10, windowMs: 1000 };
    const start = Math.floor(Date.now() / 86_400_000) * 86_400_000 + 3_600_000 * 12;
    const acquire = (now: number) =>
      store!.acquire({ group: 'sparse', keys, model: 'm', now, exclude: new Set(), limits });
    // Windows 0, 10 and 20 (gaps of ten), then 21
    for (const w of [0, 10, 20, 21]) expect((await acquire(start + w * 1000)).kind).toBe('key');
    await new Promise((r) => setTimeout(r, 200)); // the tidying write is off the request's path
    const [item] = await tableItems('quota#key:sparse');
    const windows = Object.keys(item!)
      .filter((n) => /^[mt]\d+$/.test(n))
      .map((n) => Number(n.slice(1)));
    const first = start / 1000;
    expect([...new Set(windows)].sort()).toEqual([first + 20, first + 21]);
    expect(Number(item!.d)).toBe(4);
  });

  it('limits a client across instances exactly', async () => {
    const stores = instances();
    const keys = keyRefs(4);
    const client = { clientId: 'client-hash-1', rpm: 25 };
    const now = Date.now();
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        stores[i % INSTANCES]!.acquire({
          group: 'clients',
          keys,
          model: 'm',
          now,
          exclude: new Set(),
          client,
        }),
      ),
    );
    expect(results.filter((r) => r.kind === 'key')).toHaveLength(25);
    expect(results.filter((r) => r.kind === 'client_limited')).toHaveLength(175);
  });

  it('has every instance honour a cooldown written by one of them within the cache time', async () => {
    // Prepare
    const cacheMs = 150;
    const stores = instances(cacheMs);
    const group = 'cool';
    const keys = keyRefs(4);
    const acquireAll = () =>
      Promise.all(
        Array.from({ length: 80 }, (_, i) =>
          stores[i % INSTANCES]!.acquire({ group, keys, model: 'm', now: Date.now(), exclude: new Set() }),
        ),
      );
    await acquireAll(); // every instance has read the group's state

    // Act: one instance cools key0; the others learn of it only from DynamoDB
    await stores[0]!.record({
      kind: 'cooldown',
      group,
      keyId: 'key0',
      model: 'm',
      cooldown: { until: Date.now() + 60_000, cause: 'rpm' },
    });
    await new Promise((r) => setTimeout(r, cacheMs));
    const after = await acquireAll();

    // Assess
    expect(after.every((r) => r.kind === 'key' && r.keyId !== 'key0')).toBe(true);
  });

  it('makes one DynamoDB call per selection in steady state, reads included', async () => {
    // Prepare: one instance, warm cache
    const client = testClient(engine.endpoint);
    const calls = countCalls(client);
    const store = new DynamoDbKeyStateStore({
      client,
      table: engine.table,
      cacheMs: 60_000,
      rotationShards: 4,
    });
    const keys = keyRefs(4);
    const select = (group: string, limits?: { rpm: number }) =>
      store.acquire({ group, keys, model: 'm', now: Date.now(), exclude: new Set(), limits });
    await select('hot');
    await select('hot-quota', { rpm: 1000 });
    calls.reset();

    // Act
    for (let i = 0; i < 50; i++) await select('hot');
    for (let i = 0; i < 50; i++) await select('hot-quota', { rpm: 1000 });

    // Assess
    expect(Object.fromEntries(calls.counts)).toEqual({ UpdateItemCommand: 100 });
  });
});
