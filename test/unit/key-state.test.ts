import { describe, expect, it } from 'vitest';
import { isUsable, type KeyView, pickKey } from '../../lambda/core/key-state.js';

const now = 1_000_000;
const key = (keyId: string, over: Partial<KeyView> = {}): KeyView => ({
  keyId,
  status: 'active',
  cooldowns: {},
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
      key('c', { cooldowns: { m: { until: now + 10, cause: 'rpm' } } }),
      key('d'),
      key('e'),
    ];
    expect(pickKey(keys, 0, 'm', now, new Set(['d']))).toEqual({ keyId: 'e', index: 4 });
  });

  it('honours a cooldown only for its own model', () => {
    const keys = [key('a', { cooldowns: { m1: { until: now + 10, cause: 'rpm' } } })];
    expect(pickKey(keys, 0, 'm1', now, new Set())).toEqual({ retryAt: now + 10 });
    expect(pickKey(keys, 0, 'm2', now, new Set())).toEqual({ keyId: 'a', index: 0 });
  });

  it('treats an expired cooldown as usable', () => {
    const k = key('a', { cooldowns: { m: { until: now, cause: 'rpm' } } });
    expect(isUsable(k, 'm', now)).toBe(true);
    expect(isUsable(k, 'm', now - 1)).toBe(false);
  });

  it('reports the soonest cooldown end when nothing is usable', () => {
    const keys = [
      key('a', { cooldowns: { m: { until: now + 500, cause: 'rpm' } } }),
      key('b', { cooldowns: { m: { until: now + 200, cause: 'rpm' } } }),
      key('c', { status: 'invalid' }),
    ];
    expect(pickKey(keys, 0, 'm', now, new Set())).toEqual({ retryAt: now + 200 });
  });

  it('reports no retry time when no key will ever free up', () => {
    const keys = [key('a', { status: 'invalid' }), key('b', { status: 'disabled' })];
    expect(pickKey(keys, 0, 'm', now, new Set())).toEqual({ retryAt: undefined });
  });

  it('passes over unhealthy keys while a healthy usable key exists, and uses them when none does', () => {
    const keys = [key('a'), key('b'), key('c', { cooldowns: { m: { until: now + 10, cause: 'rpm' } } })];
    const healthyOnlyC = (k: KeyView) => k.keyId === 'c';
    // c is healthy but cooling: the unhealthy usable keys serve, in rotation order.
    expect(pickKey(keys, 0, 'm', now, new Set(), healthyOnlyC)).toEqual({ keyId: 'a', index: 0 });
    const healthyOnlyB = (k: KeyView) => k.keyId === 'b';
    expect(pickKey(keys, 0, 'm', now, new Set(), healthyOnlyB)).toEqual({ keyId: 'b', index: 1 });
    expect(pickKey(keys, 0, 'm', now, new Set(['b']), healthyOnlyB)).toEqual({ keyId: 'a', index: 0 });
  });
});
