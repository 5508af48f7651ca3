import { describe, expect, it } from 'vitest';
import type { KeyStateStore } from '../../lambda/core/key-state.js';

/**
 * The behaviour every KeyStateStore must have. Each store's test file calls this with a factory
 * that returns a fresh, empty store.
 */
export function keyStateStoreContract(
  name: string,
  create: () => Promise<KeyStateStore> | KeyStateStore,
): void {
  describe(`KeyStateStore contract: ${name}`, () => {
    const keyIds = ['k0', 'k1', 'k2', 'k3'];
    const now = 1_700_000_000_000;
    const acquire = (store: KeyStateStore, model = 'm', exclude: string[] = [], at = now) =>
      store.acquire({ group: 'g', keyIds, model, now: at, exclude: new Set(exclude) });

    it('rotates evenly over the keys', async () => {
      const store = await create();
      const counts = new Map<string, number>();
      for (let i = 0; i < 40; i++) {
        const a = await acquire(store);
        if (a.kind !== 'key') throw new Error('expected a key');
        counts.set(a.keyId, (counts.get(a.keyId) ?? 0) + 1);
      }
      expect([...counts.values()]).toEqual([10, 10, 10, 10]);
    });

    it('skips a key cooling for the model, but not for other models', async () => {
      const store = await create();
      await store.record({
        kind: 'cooldown',
        keyId: 'k1',
        model: 'm',
        cooldown: { until: now + 1000, cause: 'rpm' },
      });
      const seen = new Set<string>();
      for (let i = 0; i < 8; i++) {
        const a = await acquire(store);
        if (a.kind === 'key') seen.add(a.keyId);
      }
      expect(seen.has('k1')).toBe(false);
      const other = new Set<string>();
      for (let i = 0; i < 8; i++) {
        const a = await acquire(store, 'other');
        if (a.kind === 'key') other.add(a.keyId);
      }
      expect(other.has('k1')).toBe(true);
    });

    it('serves a key again once its cooldown has passed', async () => {
      const store = await create();
      for (const keyId of keyIds) {
        await store.record({
          kind: 'cooldown',
          keyId,
          model: 'm',
          cooldown: { until: now + 1000, cause: 'rpm' },
        });
      }
      expect(await acquire(store)).toEqual({ kind: 'unavailable', retryAt: now + 1000 });
      expect((await acquire(store, 'm', [], now + 1000)).kind).toBe('key');
    });

    it('only extends a cooldown, never shortens it', async () => {
      const store = await create();
      await store.record({
        kind: 'cooldown',
        keyId: 'k0',
        model: 'm',
        cooldown: { until: now + 5000, cause: 'rpd' },
      });
      await store.record({
        kind: 'cooldown',
        keyId: 'k0',
        model: 'm',
        cooldown: { until: now + 1000, cause: 'rpm' },
      });
      const [view] = await store.describe(['k0']);
      expect(view?.cooldowns.m).toEqual({ until: now + 5000, cause: 'rpd' });
    });

    it('keeps an invalid key out of rotation, and a success does not revive it', async () => {
      const store = await create();
      await store.record({ kind: 'invalid', keyId: 'k2', reason: 'API_KEY_INVALID' });
      await store.record({ kind: 'success', keyId: 'k2', model: 'm', latencyMs: 5 });
      for (let i = 0; i < 8; i++) {
        const a = await acquire(store);
        expect(a.kind === 'key' && a.keyId).not.toBe('k2');
      }
      const [view] = await store.describe(['k2']);
      expect(view).toMatchObject({ status: 'invalid', reason: 'API_KEY_INVALID' });
    });

    it('reports no retry time when every key is invalid', async () => {
      const store = await create();
      for (const keyId of keyIds) await store.record({ kind: 'invalid', keyId, reason: 'LEAKED' });
      expect(await acquire(store)).toEqual({ kind: 'unavailable', retryAt: undefined });
    });

    it('does not hand out excluded keys', async () => {
      const store = await create();
      const a = await acquire(store, 'm', ['k0', 'k1', 'k2']);
      expect(a).toEqual({ kind: 'key', keyId: 'k3' });
      expect(await acquire(store, 'm', keyIds)).toEqual({ kind: 'unavailable', retryAt: undefined });
    });

    it('describes unknown keys as active with no cooldowns', async () => {
      const store = await create();
      expect(await store.describe(['k3'])).toEqual([
        { keyId: 'k3', status: 'active', reason: undefined, cooldowns: {} },
      ]);
    });
  });
}
