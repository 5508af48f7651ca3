import { describe, expect, it } from 'vitest';
import { HealthScores, healthScore } from '../../lambda/core/health-score.js';

describe('Function: healthScore', () => {
  it.each([
    ['a perfect, fast key', 1, 0, 500, 1],
    ['latency at the fast bound', 1, 0, 2000, 1],
    ['latency half way to slow', 1, 0, 11_000, 0.75],
    ['very slow', 1, 0, 60_000, 0.5],
    ['one consecutive failure halves', 1, 1, undefined, 0.5],
    ['three consecutive failures', 1, 3, undefined, 0.13],
    ['a mixed record', 0.8, 0, 1000, 0.8],
    ['all combined', 0.6, 1, 11_000, 0.22],
  ])('%s', (_name, ratio, failures, latency, expected) => {
    expect(healthScore(ratio, failures, latency)).toBe(expected);
  });
});

describe('Class: HealthScores', () => {
  it('starts at 1, falls with failures, recovers with successes', () => {
    const s = new HealthScores();
    expect(s.score('k')).toBe(1);
    s.failure('k');
    s.failure('k');
    expect(s.score('k')).toBe(0.16); // 0.64 × 0.25
    s.success('k', 100);
    expect(s.score('k')).toBeCloseTo(0.71, 2); // consecutive failures cleared, ratio 0.712
    for (let i = 0; i < 20; i++) s.success('k', 100);
    expect(s.score('k')).toBeGreaterThan(0.95);
  });

  it('heals a passed-over key with time', () => {
    let now = 0;
    const s = new HealthScores(() => now);
    s.failure('k');
    s.failure('k');
    expect(s.score('k')).toBe(0.16);
    now = 59_000;
    expect(s.score('k')).toBe(0.16);
    now = 60_000;
    expect(s.score('k')).toBe(0.82); // penalty lifted; 1 - 0.36 × 0.5
    now = 180_000;
    expect(s.score('k')).toBe(0.96);
  });
});
