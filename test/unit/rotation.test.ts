import { describe, expect, it } from 'vitest';
import type { KeyView } from '../../lambda/core/key-state/port.js';
import { isUsable, pickKey, unavailable } from '../../lambda/core/key-state/rotation.js';

const now = 1_000_000;
const key = (keyId: string, over: Partial<KeyView> = {}): KeyView => ({
  keyId,
  status: 'active',
  cooldowns: new Map(),
  ...over,
});

describe('Function: pickKey', () => {
  it('starts at the cursor and wraps around', () => {
    const keys = [key('a'), key('b'), key('c')];
    expect(pickKey(keys, 1, 'm', now, new Set())).toEqual({ keyId: 'b', index: 1 });
    expect(pickKey(keys, 5, 'm', now, new Set())).toEqual({ keyId: 'c', index: 2 });
  });

  it('skips invalid, disabled, excluded and cooling keys', () => {
    const keys = [
      key('a', { status: 'invalid' }),
      key('b', { status: 'disabled' }),
      key('c', { cooldowns: new Map([['m', { until: now + 10, cause: 'rpm' }]]) }),
      key('d'),
      key('e'),
    ];
    expect(pickKey(keys, 0, 'm', now, new Set(['d']))).toEqual({ keyId: 'e', index: 4 });
  });

  it('honours a cooldown only for its own model', () => {
    const keys = [key('a', { cooldowns: new Map([['m1', { until: now + 10, cause: 'rpm' }]]) })];
    expect(pickKey(keys, 0, 'm1', now, new Set())).toEqual({ retryAt: now + 10 });
    expect(pickKey(keys, 0, 'm2', now, new Set())).toEqual({ keyId: 'a', index: 0 });
  });

  it('treats an expired cooldown as usable', () => {
    const k = key('a', { cooldowns: new Map([['m', { until: now, cause: 'rpm' }]]) });
    expect(isUsable(k, 'm', now)).toBe(true);
    expect(isUsable(k, 'm', now - 1)).toBe(false);
  });

  it('reports the soonest cooldown end when nothing is usable', () => {
    const keys = [
      key('a', { cooldowns: new Map([['m', { until: now + 500, cause: 'rpm' }]]) }),
      key('b', { cooldowns: new Map([['m', { until: now + 200, cause: 'rpm' }]]) }),
      key('c', { status: 'invalid' }),
    ];
    expect(pickKey(keys, 0, 'm', now, new Set())).toEqual({ retryAt: now + 200 });
  });

  it('reports no retry time when no key will ever free up', () => {
    const keys = [key('a', { status: 'invalid' }), key('b', { status: 'disabled' })];
    expect(pickKey(keys, 0, 'm', now, new Set())).toEqual({ retryAt: undefined });
  });

  it('passes over keys scoring far below the best usable key, and uses them when none is better', () => {
    // Prepare: c scores best but is cooling
    const keys = [
      key('a'),
      key('b'),
      key('c', { cooldowns: new Map([['m', { until: now + 10, cause: 'rpm' }]]) }),
    ];
    const scores = (table: Record<string, number>) => ({
      score: (k: KeyView) => table[k.keyId]!,
      floor: 0.3,
    });

    // Assess: among the usable keys (a, b) only b is far below the best, then a is the best
    expect(pickKey(keys, 0, 'm', now, new Set(), scores({ a: 0.1, b: 0.1, c: 1 }))).toEqual({
      keyId: 'a',
      index: 0,
    });
    expect(pickKey(keys, 0, 'm', now, new Set(), scores({ a: 0.1, b: 0.9, c: 1 }))).toEqual({
      keyId: 'b',
      index: 1,
    });
    expect(pickKey(keys, 0, 'm', now, new Set(['b']), scores({ a: 0.1, b: 0.9, c: 1 }))).toEqual({
      keyId: 'a',
      index: 0,
    });
  });

  it('keeps the rotation even when every key scores low alike (a failure that hit them all)', () => {
    const keys = [key('a'), key('b'), key('c')];
    const low = { score: (k: KeyView) => ({ a: 0.06, b: 0.16, c: 0.1 })[k.keyId]!, floor: 0.3 };
    const picked = [0, 1, 2].map((start) => pickKey(keys, start, 'm', now, new Set(), low));
    expect(picked.map((p) => ('keyId' in p ? p.keyId : undefined))).toEqual(['a', 'b', 'c']);
  });

  it('ignores scores with a floor of 0', () => {
    const keys = [key('a'), key('b')];
    const off = { score: (k: KeyView) => (k.keyId === 'a' ? 0 : 1), floor: 0 };
    expect(pickKey(keys, 0, 'm', now, new Set(), off)).toEqual({ keyId: 'a', index: 0 });
  });
});

describe('Function: unavailable', () => {
  it.each([
    ['a cooldown ends first', now + 10, now + 20, { retryAt: now + 10, cause: 'cooling' }],
    ['a quota window opens first', now + 20, now + 10, { retryAt: now + 10, cause: 'quota' }],
    ['both at once: the cooldown is named', now + 10, now + 10, { retryAt: now + 10, cause: 'cooling' }],
    ['only a quota window will open', undefined, now + 10, { retryAt: now + 10, cause: 'quota' }],
    ['nothing will free up', undefined, undefined, { retryAt: undefined, cause: 'none' }],
  ])('retries at the soonest when %s', (_name, cooling, quota, expected) => {
    expect(unavailable(cooling, quota)).toEqual({ kind: 'unavailable', ...expected });
  });
});
