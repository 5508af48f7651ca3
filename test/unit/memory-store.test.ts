import { describe, expect, it } from 'vitest';
import { MemoryKeyStateStore } from '../../lambda/adapters/memory-store.js';
import { keyStateStoreContract } from '../support/store-contract.js';

keyStateStoreContract('MemoryKeyStateStore', () => new MemoryKeyStateStore());

describe('Class: MemoryKeyStateStore (memory)', () => {
  it('forgets quota windows of past days instead of growing with every model name', async () => {
    const store = new MemoryKeyStateStore();
    const keys = [{ keyId: 'k', budget: 'key:k' }];
    const day1 = Date.parse('2026-07-04T15:00:00Z');
    for (let i = 0; i < 1000; i++) {
      await store.acquire({
        group: 'g',
        keys,
        model: `m${i}`,
        now: day1,
        exclude: new Set(),
        limits: { rpd: 5 },
      });
    }
    const day2 = day1 + 86_400_000;
    await store.acquire({ group: 'g', keys, model: 'm0', now: day2, exclude: new Set(), limits: { rpd: 5 } });
    expect((store as unknown as { budgets: Map<string, unknown> }).budgets.size).toBe(1);
  });
});
