import { describe, expect, it } from 'vitest';
import type { AcquireRequest, KeyRef, KeyStateStore } from '../../lambda/core/key-state/port.js';
import { nextPacificMidnight } from '../../lambda/core/pacific-time.js';

let groupSeq = 0;

/**
 * The behaviour every KeyStateStore must have. `create` returns a store; each test uses a group name of
 * its own, so stores backed by one shared table don't see each other's tests.
 */
export function keyStateStoreContract(
  name: string,
  create: () => Promise<KeyStateStore> | KeyStateStore,
): void {
  describe(`KeyStateStore contract: ${name}`, () => {
    const keyIds = ['k0', 'k1', 'k2', 'k3'];
    const keys: KeyRef[] = keyIds.map((keyId) => ({ keyId, budget: `key:${keyId}` }));
    const now = Date.parse('2026-07-04T15:30:10Z');

    async function setup() {
      const store = await create();
      const group = `g${++groupSeq}-${Math.random().toString(36).slice(2, 8)}`;
      // Budgets are shared across groups (they are Google projects): make this test's its own.
      const own = keys.map((k) => ({ ...k, budget: `${k.budget}@${group}` }));
      const acquire = (over: Partial<AcquireRequest> = {}) =>
        store.acquire({ group, keys: own, model: 'm', now, exclude: new Set(), ...over });
      return { store, group, acquire };
    }

    it('rotates evenly over the keys', async () => {
      const { acquire } = await setup();
      const counts = new Map<string, number>();
      for (let i = 0; i < 40; i++) {
        const a = await acquire();
        if (a.kind !== 'key') throw new Error(`expected a key, got ${a.kind}`);
        counts.set(a.keyId, (counts.get(a.keyId) ?? 0) + 1);
      }
      expect([...counts.values()].sort()).toEqual([10, 10, 10, 10]);
    });

    it('skips a key cooling for the model, but not for other models', async () => {
      const { store, group, acquire } = await setup();
      await store.record({
        kind: 'cooldown',
        group,
        keyId: 'k1',
        model: 'm',
        cooldown: { until: now + 1000, cause: 'rpm' },
      });
      const seen = new Set<string>();
      const other = new Set<string>();
      for (let i = 0; i < 8; i++) {
        const a = await acquire();
        if (a.kind === 'key') seen.add(a.keyId);
      }
      for (let i = 0; i < 8; i++) {
        const b = await acquire({ model: 'other' });
        if (b.kind === 'key') other.add(b.keyId);
      }
      expect(seen.has('k1')).toBe(false);
      expect(seen.size).toBe(3);
      expect(other.has('k1')).toBe(true);
    });

    it('reports the soonest cooldown end when every key is cooling, and serves again after it', async () => {
      const { store, group, acquire } = await setup();
      for (const [i, keyId] of keyIds.entries()) {
        await store.record({
          kind: 'cooldown',
          group,
          keyId,
          model: 'm',
          cooldown: { until: now + 1000 + i, cause: 'rpm' },
        });
      }
      expect(await acquire()).toEqual({ kind: 'unavailable', retryAt: now + 1000, cause: 'cooling' });
      expect(await acquire({ now: now + 1000 })).toEqual({ kind: 'key', keyId: 'k0' });
    });

    it('cools models named like Object.prototype members as any other', async () => {
      const { store, group, acquire } = await setup();
      for (const model of ['constructor', 'toString', '__proto__', 'hasOwnProperty']) {
        for (const keyId of keyIds) {
          await store.record({
            kind: 'cooldown',
            group,
            keyId,
            model,
            cooldown: { until: now + 1000, cause: 'rpm' },
          });
        }
        expect(await acquire({ model })).toEqual({
          kind: 'unavailable',
          retryAt: now + 1000,
          cause: 'cooling',
        });
        const [view] = await store.describe(group, ['k0']);
        expect(view?.cooldowns.get(model)).toEqual({ until: now + 1000, cause: 'rpm' });
      }
      // Other models are untouched.
      expect(await acquire({ model: 'm' })).toMatchObject({ kind: 'key' });
    });

    it('only extends a cooldown, never shortens it', async () => {
      const { store, group } = await setup();
      await store.record({
        kind: 'cooldown',
        group,
        keyId: 'k0',
        model: 'm',
        cooldown: { until: now + 5000, cause: 'rpd' },
      });
      await store.record({
        kind: 'cooldown',
        group,
        keyId: 'k0',
        model: 'm',
        cooldown: { until: now + 1000, cause: 'rpm' },
      });
      const [view] = await store.describe(group, ['k0']);
      expect(view?.cooldowns.get('m')).toEqual({ until: now + 5000, cause: 'rpd' });
      await store.record({
        kind: 'cooldown',
        group,
        keyId: 'k0',
        model: 'm',
        cooldown: { until: now + 9000, cause: 'rpm' },
      });
      const [later] = await store.describe(group, ['k0']);
      expect(later?.cooldowns.get('m')).toEqual({ until: now + 9000, cause: 'rpm' });
    });

    it('keeps an invalid key out of rotation, and a success does not revive it', async () => {
      const { store, group, acquire } = await setup();
      await store.record({ kind: 'invalid', group, keyId: 'k2', reason: 'API_KEY_INVALID' });
      await store.record({ kind: 'success', group, keyId: 'k2', model: 'm', latencyMs: 5 });
      await store.flush();
      for (let i = 0; i < 8; i++) {
        const a = await acquire();
        expect(a.kind === 'key' && a.keyId).not.toBe('k2');
      }
      const [view] = await store.describe(group, ['k2']);
      expect(view).toMatchObject({ status: 'invalid', reason: 'API_KEY_INVALID' });
    });

    it('lets an operator disable win over everything, and lifts only its own disable', async () => {
      const { store, group, acquire } = await setup();
      await store.record({ kind: 'operator', group, keyId: 'k0', status: 'disabled' });
      await store.record({ kind: 'invalid', group, keyId: 'k0', reason: 'LEAKED' });
      await store.record({ kind: 'success', group, keyId: 'k0', model: 'm', latencyMs: 1 });
      await store.flush();
      expect((await store.describe(group, ['k0']))[0]).toMatchObject({ status: 'disabled' });
      for (let i = 0; i < 8; i++) expect((await acquire()).kind === 'key' && 'k0').not.toBe(true);
      // Lifting the disable restores the key's own health: what was learnt meanwhile still counts.
      await store.record({ kind: 'operator', group, keyId: 'k0', status: 'active' });
      expect((await store.describe(group, ['k0']))[0]).toMatchObject({ status: 'invalid', reason: 'LEAKED' });
      await store.record({ kind: 'operator', group, keyId: 'k3', status: 'disabled' });
      await store.record({ kind: 'operator', group, keyId: 'k3', status: 'active' });
      expect((await store.describe(group, ['k3']))[0]).toMatchObject({ status: 'active' });
      // Invalid, then disabled, then enabled: still invalid (the operator's switch never revives a key).
      await store.record({ kind: 'invalid', group, keyId: 'k1', reason: 'CONSUMER_SUSPENDED' });
      await store.record({ kind: 'operator', group, keyId: 'k1', status: 'disabled' });
      await store.record({ kind: 'operator', group, keyId: 'k1', status: 'active' });
      expect((await store.describe(group, ['k1']))[0]).toMatchObject({
        status: 'invalid',
        reason: 'CONSUMER_SUSPENDED',
      });
    });

    it('revives an invalid key only for a healable reason, and never lifts a disable', async () => {
      const { store, group } = await setup();
      const healable = ['SERVICE_DISABLED', 'CONSUMER_SUSPENDED'];
      await store.record({ kind: 'invalid', group, keyId: 'k0', reason: 'SERVICE_DISABLED' });
      await store.record({ kind: 'invalid', group, keyId: 'k1', reason: 'LEAKED' });
      await store.record({ kind: 'invalid', group, keyId: 'k2', reason: 'CONSUMER_SUSPENDED' });
      await store.record({ kind: 'operator', group, keyId: 'k2', status: 'disabled' });
      for (const keyId of ['k0', 'k1', 'k2', 'k3'])
        await store.record({ kind: 'revive', group, keyId, reasons: healable });
      const views = await store.describe(group, ['k0', 'k1', 'k2', 'k3']);
      expect(views.map((v) => v.status)).toEqual(['active', 'invalid', 'disabled', 'active']);
      expect(views[1]?.reason).toBe('LEAKED');
      await store.record({ kind: 'operator', group, keyId: 'k2', status: 'active' });
      expect((await store.describe(group, ['k2']))[0]?.status).toBe('active');
    });

    it('clears only cooldowns that have ended', async () => {
      const { store, group } = await setup();
      await store.record({
        kind: 'cooldown',
        group,
        keyId: 'k0',
        model: 'old',
        cooldown: { until: now - 1, cause: 'rpm' },
      });
      await store.record({
        kind: 'cooldown',
        group,
        keyId: 'k0',
        model: 'new',
        cooldown: { until: now + 60_000, cause: 'rpd' },
      });
      await store.record({ kind: 'clear_expired', group, keyId: 'k0', now });
      const [view] = await store.describe(group, ['k0']);
      expect(view?.cooldowns).toEqual(new Map([['new', { until: now + 60_000, cause: 'rpd' }]]));
    });

    it('reports no retry time when every key is invalid', async () => {
      const { store, group, acquire } = await setup();
      for (const keyId of keyIds) await store.record({ kind: 'invalid', group, keyId, reason: 'LEAKED' });
      expect(await acquire()).toMatchObject({ kind: 'unavailable', retryAt: undefined });
    });

    it('does not hand out excluded keys', async () => {
      const { acquire } = await setup();
      expect(await acquire({ exclude: new Set(['k0', 'k1', 'k2']) })).toEqual({ kind: 'key', keyId: 'k3' });
      expect(await acquire({ exclude: new Set(keyIds) })).toMatchObject({
        kind: 'unavailable',
        retryAt: undefined,
      });
    });

    it('describes unknown keys as active with no cooldowns', async () => {
      const { store, group } = await setup();
      expect(await store.describe(group, ['k3'])).toEqual([
        { keyId: 'k3', status: 'active', reason: undefined, cooldowns: new Map() },
      ]);
    });

    it('hands out a key only while its per-minute budget lasts, then says when the next minute opens', async () => {
      const { acquire } = await setup();
      const limits = { rpm: 2 };
      const got: string[] = [];
      for (let i = 0; i < 8; i++) {
        const a = await acquire({ limits });
        if (a.kind === 'key') got.push(a.keyId);
      }
      expect(got.sort()).toEqual(['k0', 'k0', 'k1', 'k1', 'k2', 'k2', 'k3', 'k3']);
      const minuteEnd = Math.floor(now / 60_000) * 60_000 + 60_000;
      expect(await acquire({ limits })).toEqual({
        kind: 'unavailable',
        retryAt: minuteEnd,
        cause: 'quota',
        metric: 'rpm',
      });
      expect((await acquire({ limits, now: minuteEnd })).kind).toBe('key');
    });

    it.each([
      ['without limits (rotation only)', undefined],
      ['with limits (a budget claim)', { rpm: 100 }],
    ])('leaves the rotation alone when a retry re-claims the key it holds, %s', async (_, limits) => {
      // Prepare: keys handed out in rotation up to k2, whose successor (k3) is neither where a rotation
      // restarted from the retry's one-key list (k0, k1) nor one step further on (k0)
      const { acquire, group } = await setup();
      let held: string | undefined;
      for (let i = 0; i < keyIds.length && held !== 'k2'; i++) {
        const a = await acquire({ limits });
        if (a.kind !== 'key') throw new Error(`expected a key, got ${a.kind}`);
        held = a.keyId;
      }
      expect(held).toBe('k2');

      // Act: the retry claims its key again, then the rotation goes on
      const again = await acquire({
        limits,
        retry: true,
        keys: [{ keyId: 'k2', budget: `key:k2@${group}` }],
      });
      const next: string[] = [];
      for (let i = 0; i < 4; i++) {
        const a = await acquire({ limits });
        if (a.kind === 'key') next.push(a.keyId);
      }

      // Assess: the key after the held one comes next, as without the retry, then each key once
      expect(again).toMatchObject({ kind: 'key', keyId: 'k2' });
      expect(next).toEqual(['k3', 'k0', 'k1', 'k2']);
    });

    it('shares one budget between keys of the same project', async () => {
      const { acquire, group } = await setup();
      const shared: KeyRef[] = [
        { keyId: 'k0', budget: `project:p@${group}` },
        { keyId: 'k1', budget: `project:p@${group}` },
        { keyId: 'k2', budget: `key:k2@${group}` },
      ];
      let served = 0;
      for (let i = 0; i < 10; i++)
        if ((await acquire({ keys: shared, limits: { rpm: 3 } })).kind === 'key') served++;
      expect(served).toBe(6);
    });

    it('parks a daily budget until Pacific midnight', async () => {
      const { acquire } = await setup();
      const limits = { rpd: 1 };
      for (let i = 0; i < 4; i++) expect((await acquire({ limits })).kind).toBe('key');
      expect(await acquire({ limits, now: now + 120_000 })).toEqual({
        kind: 'unavailable',
        retryAt: nextPacificMidnight(now),
        cause: 'quota',
        metric: 'rpd',
      });
      expect((await acquire({ limits, now: nextPacificMidnight(now) })).kind).toBe('key');
    });

    it('claims input tokens with the request: a prompt that does not fit waits for the next window, a smaller one fits', async () => {
      const { acquire, group } = await setup();
      const one = [{ keyId: 'k0', budget: `key:k0@${group}` }];
      const limits = { tpm: 1000 };
      const first = await acquire({ keys: one, limits, tokens: 700 });
      expect(first).toMatchObject({ kind: 'key', keyId: 'k0', claim: { tokens: 700 } });
      const minuteEnd = Math.floor(now / 60_000) * 60_000 + 60_000;
      expect(await acquire({ keys: one, limits, tokens: 400 })).toEqual({
        kind: 'unavailable',
        retryAt: minuteEnd,
        cause: 'quota',
        metric: 'tpm',
      });
      expect((await acquire({ keys: one, limits, tokens: 300 })).kind).toBe('key');
      expect((await acquire({ keys: one, limits, tokens: 400, now: minuteEnd })).kind).toBe('key');
    });

    it('never hands out a key whose whole token window is smaller than the request', async () => {
      const { acquire } = await setup();
      const a = await acquire({ limits: { tpm: 1000 }, tokens: 1001 });
      expect(a).toMatchObject({ kind: 'unavailable', retryAt: undefined, cause: 'none', overTpm: 1000 });
    });

    it('reconciles a claim with the tokens Gemini counted: the difference is charged or refunded', async () => {
      const { store, acquire, group } = await setup();
      const one = [{ keyId: 'k0', budget: `key:k0@${group}` }];
      const limits = { tpm: 1000 };
      const first = await acquire({ keys: one, limits, tokens: 900 });
      if (first.kind !== 'key' || first.claim === undefined) throw new Error('expected a claim');
      expect((await acquire({ keys: one, limits, tokens: 500 })).kind).toBe('unavailable');
      // Gemini counted 300, not 900: 600 refunded, so 500 more fit (and then nothing more).
      await store.record({ kind: 'tokens', group, keyId: 'k0', model: 'm', claim: first.claim, delta: -600 });
      expect((await acquire({ keys: one, limits, tokens: 500 })).kind).toBe('key');
      expect((await acquire({ keys: one, limits, tokens: 300 })).kind).toBe('unavailable');
      // A charge (Gemini counted more) fills the window as well.
      const next = now + 60_000;
      const second = await acquire({ keys: one, limits, tokens: 100, now: next });
      if (second.kind !== 'key' || second.claim === undefined) throw new Error('expected a claim');
      await store.record({ kind: 'tokens', group, keyId: 'k0', model: 'm', claim: second.claim, delta: 850 });
      expect((await acquire({ keys: one, limits, tokens: 100, now: next })).kind).toBe('unavailable');
    });

    it('holds a budget to a limit Gemini reported, until it lapses; configured limits win', async () => {
      const { store, acquire, group } = await setup();
      const k0 = { keyId: 'k0', budget: `key:k0@${group}` };
      await store.record({
        kind: 'learned',
        group,
        keyId: 'k0',
        budget: k0.budget,
        model: 'm',
        metric: 'rpm',
        limit: 2,
        until: now + 3_600_000,
      });
      const kinds: string[] = [];
      for (let i = 0; i < 3; i++) kinds.push((await acquire({ keys: [k0] })).kind);
      expect(kinds).toEqual(['key', 'key', 'unavailable']);
      // Another model is not held by it.
      expect((await acquire({ keys: [k0], model: 'other' })).kind).toBe('key');
      // A configured limit wins over the learned one.
      expect((await acquire({ keys: [k0], limits: { rpm: 5 } })).kind).toBe('key');
      // Lapsed: not enforced any more.
      expect((await acquire({ keys: [k0], now: now + 3_600_001 })).kind).toBe('key');
      expect(await store.learned?.(group, [k0.budget], now)).toEqual([
        { budget: k0.budget, model: 'm', limits: { rpm: { limit: 2, until: now + 3_600_000 } } },
      ]);
    });

    it('replaces a learned limit when Gemini reports another', async () => {
      const { store, acquire, group } = await setup();
      const k0 = { keyId: 'k0', budget: `key:k0@${group}` };
      const learn = (limit: number, until: number) =>
        store.record({
          kind: 'learned',
          group,
          keyId: 'k0',
          budget: k0.budget,
          model: 'm',
          metric: 'rpm',
          limit,
          until,
        });
      await learn(1, now + 1000);
      await learn(3, now + 2000);
      const kinds: string[] = [];
      for (let i = 0; i < 4; i++) kinds.push((await acquire({ keys: [k0] })).kind);
      expect(kinds).toEqual(['key', 'key', 'key', 'unavailable']);
    });

    it('tells a park (limit 0) apart from a cooldown: no retry time, other models served', async () => {
      const { store, group, acquire } = await setup();
      for (const keyId of keyIds) {
        await store.record({
          kind: 'cooldown',
          group,
          keyId,
          model: 'm',
          cooldown: { until: nextPacificMidnight(now), cause: 'unavailable' },
        });
      }
      expect(await acquire()).toEqual({
        kind: 'unavailable',
        retryAt: undefined,
        cause: 'none',
        parked: true,
      });
      expect((await acquire({ model: 'other' })).kind).toBe('key');
      const [view] = await store.describe(group, ['k0']);
      expect(view?.cooldowns.get('m')?.cause).toBe('unavailable');
    });

    it('limits a client per minute across its requests', async () => {
      const { acquire } = await setup();
      const client = { clientId: `c-${Math.random()}`, rpm: 3 };
      const kinds: string[] = [];
      for (let i = 0; i < 5; i++) kinds.push((await acquire({ client })).kind);
      expect(kinds).toEqual(['key', 'key', 'key', 'client_limited', 'client_limited']);
      const minuteEnd = Math.floor(now / 60_000) * 60_000 + 60_000;
      expect(await acquire({ client })).toEqual({ kind: 'client_limited', retryAt: minuteEnd });
      expect((await acquire({ client, now: minuteEnd })).kind).toBe('key');
    });
  });
}
