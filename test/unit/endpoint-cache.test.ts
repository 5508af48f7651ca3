import { afterEach, describe, expect, it, vi } from 'vitest';
import { EndpointCache } from '../../lambda/proxy/endpoint-cache.js';

describe('Class: EndpointCache (the bundle stand-in for @aws-sdk/endpoint-cache)', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('hands out a cached endpoint until it expires', () => {
    // Prepare
    vi.useFakeTimers({ now: 0 });
    const cache = new EndpointCache(10);

    // Act
    cache.set('k', [{ Address: 'a.example', CachePeriodInMinutes: 1 }]);
    const fresh = cache.getEndpoint('k');
    vi.setSystemTime(60_001);

    // Assess
    expect(fresh).toBe('a.example');
    expect(cache.has('k')).toBe(true);
    expect(cache.getEndpoint('k')).toBeUndefined();
    expect(cache.has('k')).toBe(false);
  });

  it('drops the least recently used key past its capacity, and forgets deleted ones', () => {
    // Prepare
    const cache = new EndpointCache(2);
    cache.set('a', [{ Address: 'a', CachePeriodInMinutes: 5 }]);
    cache.set('b', [{ Address: 'b', CachePeriodInMinutes: 5 }]);

    // Act
    cache.get('a');
    cache.set('c', [{ Address: 'c', CachePeriodInMinutes: 5 }]);
    cache.delete('c');

    // Assess
    expect(cache.has('a')).toBe(true);
    expect(cache.has('b')).toBe(false);
    expect(cache.has('c')).toBe(false);
  });
});
