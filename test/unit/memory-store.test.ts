import { describe, expect, it } from 'vitest';
import { MAX_BUDGET_WINDOWS, MemoryKeyStateStore } from '../../lambda/adapters/state/memory-store.js';
import { MAX_COOLDOWN_MODELS_PER_KEY } from '../../lambda/core/key-state/key-record.js';
import type { AcquireRequest } from '../../lambda/core/key-state/port.js';
import { keyStateStoreContract } from '../support/store-contract.js';

keyStateStoreContract('MemoryKeyStateStore', () => new MemoryKeyStateStore());

/**
 * Counts the steps taken by every Map iterator (for…of, keys(), entries(), …): a scan shows up as many of
 * them. A plain counter, not a spy: a spy would keep every call, and a scanning store makes millions.
 */
function countMapIteration() {
  const prototype = Object.getPrototypeOf(new Map().keys()) as { next: (...args: unknown[]) => unknown };
  const next = prototype.next;
  const counter = {
    steps: 0,
    restore: () => {
      prototype.next = next;
    },
  };
  prototype.next = function (this: unknown, ...args: unknown[]) {
    counter.steps++;
    return next.apply(this, args);
  };
  return counter;
}

describe('Class: MemoryKeyStateStore (memory)', () => {
  const keys = [
    { keyId: 'k0', budget: 'key:k0' },
    { keyId: 'k1', budget: 'key:k1' },
  ];
  const now = Date.parse('2026-07-04T15:00:00Z');
  const request = (model: string): AcquireRequest => ({
    group: 'g',
    keys,
    model,
    now,
    exclude: new Set(),
    limits: { rpm: 100, rpd: 1000 },
    client: { clientId: 'c', rpm: 1_000_000 },
  });

  it('stays bounded under 10,000 distinct model names, with the same upkeep per request at any size', async () => {
    // Prepare
    const store = new MemoryKeyStateStore();
    const internals = store as unknown as {
      budgets: Map<string, unknown>;
      clients: Map<string, unknown>;
      keys: Map<string, { cooldowns: Map<string, unknown> }>;
    };
    const iterations = countMapIteration();
    /** Map iterator steps one acquire and one cooldown of a new model take (both run synchronously). */
    const upkeep = (model: string) => {
      const before = iterations.steps;
      void store.acquire(request(model));
      void store.record({
        kind: 'cooldown',
        group: 'g',
        keyId: 'k0',
        model,
        cooldown: { until: now + 60_000, cause: 'rpm' },
      });
      return iterations.steps - before;
    };

    try {
      // Act: 10,000 names; note the upkeep of the first, of one just past the bounds, and of the last
      const steps = Array.from({ length: 10_000 }, (_, i) => upkeep(`model-${i}`));

      // Assess: every per-model map at its bound, not at 10,000; past the bounds each request costs the
      // same few iterator steps (one eviction per full map), however many names came before
      expect(internals.budgets.size).toBe(MAX_BUDGET_WINDOWS);
      expect(internals.keys.get('g\u0000k0')?.cooldowns.size).toBe(MAX_COOLDOWN_MODELS_PER_KEY);
      expect(internals.clients.size).toBe(1);
      expect(steps[0]).toBe(0);
      expect(new Set(steps.slice(MAX_BUDGET_WINDOWS + 1))).toEqual(new Set([2]));
    } finally {
      iterations.restore();
    }
  });

  it('drops the cooldown set longest ago past the bound, and keeps the newest', async () => {
    // Prepare: key k1 cools 'first', then twice the bound of other models; then 'hot' cools both keys
    const store = new MemoryKeyStateStore();
    const cool = (keyId: string, model: string) =>
      store.record({
        kind: 'cooldown',
        group: 'g',
        keyId,
        model,
        cooldown: { until: now + 60_000, cause: 'rpm' },
      });
    await cool('k1', 'first');
    for (let i = 0; i < MAX_COOLDOWN_MODELS_PER_KEY * 2; i++) await cool('k1', `other-${i}`);
    await cool('k0', 'hot');
    await cool('k1', 'hot');

    // Act
    const result = await store.acquire({ ...request('hot'), limits: undefined, client: undefined });
    const [k1] = await store.describe('g', ['k1']);

    // Assess: 'hot' cools both keys; k1 holds the bound, the oldest gone
    expect(result).toMatchObject({ kind: 'unavailable', cause: 'cooling' });
    expect(k1?.cooldowns.size).toBe(MAX_COOLDOWN_MODELS_PER_KEY);
    expect(k1?.cooldowns.has('hot')).toBe(true);
    expect(k1?.cooldowns.has('first')).toBe(false);
  });
});
