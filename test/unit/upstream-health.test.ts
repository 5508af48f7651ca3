import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../lambda/core/config.js';
import type { KeyView } from '../../lambda/core/key-state.js';
import { UpstreamHealth } from '../../lambda/core/upstream-health.js';

const policy = parseConfig({ client_tokens: ['t'], groups: [{ name: 'g', api_keys: ['k'] }] }).policy;
const T = 'https://gemini.example/v1beta/openai/';
const view = (keyId: string, lastCheck?: KeyView['lastCheck']): KeyView => ({
  keyId,
  status: 'active',
  cooldowns: {},
  lastCheck,
});

describe('Class: UpstreamHealth', () => {
  it('charges a key its failures once the target answers another key', () => {
    // Prepare
    const health = new UpstreamHealth(policy, () => 1_000_000);

    // Act: key a fails twice, then key b is served
    health.failed(T, 'a');
    health.failed(T, 'a');
    expect(health.score(view('a'))).toBe(1); // only a suspect so far
    health.answered(T, 'b', 100);

    // Assess: 0.8² × 0.5²
    expect(health.score(view('a'))).toBe(0.16);
    expect(health.score(view('b'))).toBe(1);
  });

  it('charges no key when several keys fail in a row: the target was down', () => {
    // Prepare
    const health = new UpstreamHealth(policy, () => 1_000_000);

    // Act: a storm over three keys, then Gemini is back
    for (const key of ['a', 'a', 'b', 'c', 'a']) health.failed(T, key);
    health.answered(T, 'b', 100);

    // Assess
    expect(['a', 'b', 'c'].map((k) => health.score(view(k)))).toEqual([1, 1, 1]);
    expect(health.circuits()[0]).toMatchObject({ state: 'closed', consecutiveFailures: 0 });
  });

  it('keeps streaks apart per target', () => {
    const health = new UpstreamHealth(policy, () => 1_000_000);
    health.failed(T, 'a');
    health.failed('https://other.example/', 'b');
    health.answered(T, 'c', 100);
    expect(health.score(view('a'))).toBe(0.4);
    expect(health.score(view('b'))).toBe(1);
  });

  it('never charges a key for no answer at all, but counts it towards the circuit', () => {
    // Prepare: the circuit opens after 2 failures
    const health = new UpstreamHealth({ ...policy, circuit_failure_threshold: 2 }, () => 1_000_000);

    // Act
    health.unreachable(T);
    health.unreachable(T);

    // Assess
    expect(health.admit(T).admitted).toBe(false);
    health.answered(T, 'a');
    expect(health.score(view('a'))).toBe(1);
  });

  it('halves a score for a transient scheduled check only, not for a 4xx or no answer', () => {
    const now = 1_000_000;
    const health = new UpstreamHealth(policy, () => now);
    expect(health.score(view('a', { outcome: 'transient', at: now - 60_000 }))).toBe(0.5);
    expect(health.score(view('a', { outcome: 'client_error', at: now - 60_000 }))).toBe(1);
    expect(health.score(view('a', { outcome: 'unreachable', at: now - 60_000 }))).toBe(1);
    expect(health.score(view('a', { outcome: 'transient', at: now - 16 * 60_000 }))).toBe(1);
  });
});
