import { describe, expect, it } from 'vitest';
import { CircuitBreakers } from '../../lambda/core/circuit-breaker.js';

const T = 'https://upstream.example/v1beta/openai/';

describe('Class: CircuitBreakers', () => {
  const breakers = (failureThreshold = 3, halfOpenProbes = 1) =>
    new CircuitBreakers({ failureThreshold, openMs: 1000, halfOpenProbes });

  it('stays closed below the threshold and opens at it', () => {
    const b = breakers();
    b.failed(T, 0);
    b.failed(T, 0);
    expect(b.admit(T, 0)).toEqual({ admitted: true });
    b.failed(T, 10);
    expect(b.admit(T, 20)).toEqual({ admitted: false, retryAt: 1010 });
    expect(b.views(20)).toEqual([{ target: T, state: 'open', consecutiveFailures: 3, openUntil: 1010 }]);
  });

  it('counts only consecutive failures: an answer in between resets the count', () => {
    const b = breakers();
    b.failed(T, 0);
    b.failed(T, 0);
    b.succeeded(T);
    b.failed(T, 0);
    b.failed(T, 0);
    expect(b.admit(T, 0).admitted).toBe(true);
  });

  it('admits only its probes when half-open, closes on a probe success', () => {
    const b = breakers(1, 2);
    b.failed(T, 0);
    expect(b.admit(T, 999).admitted).toBe(false);
    expect(b.admit(T, 1000).admitted).toBe(true);
    expect(b.admit(T, 1000).admitted).toBe(true);
    expect(b.admit(T, 1000).admitted).toBe(false);
    b.succeeded(T);
    expect(b.admit(T, 1001).admitted).toBe(true);
    expect(b.views(1001)[0]?.state).toBe('closed');
  });

  it('opens again at once when a half-open probe fails', () => {
    const b = breakers(2);
    b.failed(T, 0);
    b.failed(T, 0);
    expect(b.admit(T, 1000).admitted).toBe(true);
    b.failed(T, 1000);
    expect(b.admit(T, 1001)).toEqual({ admitted: false, retryAt: 2000 });
  });

  it('says which failure opened the circuit', () => {
    const b = breakers(2);
    expect(b.failed(T, 0)).toBe(false);
    expect(b.failed(T, 0)).toBe(true);
    expect(breakers(0).failed(T, 0)).toBe(false);
  });

  it('keeps targets apart, and does nothing when disabled', () => {
    const b = breakers(1);
    b.failed(T, 0);
    expect(b.admit('https://other.example/', 0).admitted).toBe(true);
    const off = breakers(0);
    for (let i = 0; i < 10; i++) off.failed(T, 0);
    expect(off.admit(T, 0).admitted).toBe(true);
    expect(off.views(0)).toEqual([]);
  });

  it('does not stay half-open for ever when a probe never reports back', () => {
    const b = breakers(1, 1);
    b.failed(T, 0);
    expect(b.admit(T, 1000).admitted).toBe(true); // a probe whose request never reaches Gemini
    expect(b.admit(T, 1500)).toEqual({ admitted: false, retryAt: 2000 });
    expect(b.admit(T, 2000).admitted).toBe(true); // a new round of probes
  });
});
