import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../lambda/core/config/parse.js';
import { InstanceHealth } from '../../lambda/core/instance-health.js';
import type { KeyView } from '../../lambda/core/key-state/port.js';

const policy = parseConfig({ client_tokens: ['t'], groups: [{ name: 'g', api_keys: ['k'] }] }).policy;
const T = 'https://gemini.example/v1beta/openai/';
const view = (keyId: string, lastCheck?: KeyView['lastCheck']): KeyView => ({
  keyId,
  status: 'active',
  cooldowns: new Map(),
  lastCheck,
});

describe('Class: InstanceHealth', () => {
  it('charges a key its failures once the target answers another key', () => {
    // Prepare
    const health = new InstanceHealth(policy, () => 1_000_000);

    // Act: key a fails twice, then key b is served
    health.failed(T, 'a', 'r1');
    health.failed(T, 'a', 'r1');
    expect(health.score(view('a'))).toBe(1); // only a suspect so far
    health.answered(T, 'b', 100);

    // Assess: 0.8² × 0.5²
    expect(health.score(view('a'))).toBe(0.16);
    expect(health.score(view('b'))).toBe(1);
  });

  it('charges no key when several keys fail in a row: the target was down', () => {
    // Prepare
    const health = new InstanceHealth(policy, () => 1_000_000);

    // Act: a storm over three keys, then Gemini is back
    for (const [i, key] of ['a', 'a', 'b', 'c', 'a'].entries()) health.failed(T, key, `r${i}`);
    health.answered(T, 'b', 100);

    // Assess
    expect(['a', 'b', 'c'].map((k) => health.score(view(k)))).toEqual([1, 1, 1]);
    expect(health.circuits()[0]).toMatchObject({ state: 'closed', consecutiveFailures: 0 });
  });

  it('keeps streaks apart per target', () => {
    const health = new InstanceHealth(policy, () => 1_000_000);
    health.failed(T, 'a', 'r1');
    health.failed('https://other.example/', 'b', 'r2');
    health.answered(T, 'c', 100);
    expect(health.score(view('a'))).toBe(0.4);
    expect(health.score(view('b'))).toBe(1);
  });

  it('never charges a key for no answer at all, but counts it towards the circuit', () => {
    // Prepare: the circuit opens after 2 failures
    const health = new InstanceHealth({ ...policy, circuit_failure_threshold: 2 }, () => 1_000_000);

    // Act
    health.unreachable(T, 'r1');
    health.unreachable(T, 'r2');

    // Assess
    expect(health.admit(T).admitted).toBe(false);
    health.answered(T, 'a');
    expect(health.score(view('a'))).toBe(1);
  });

  it('counts one failure per request towards the circuit: retries and other keys add nothing', () => {
    // Prepare: the circuit opens after 2 failures
    const health = new InstanceHealth({ ...policy, circuit_failure_threshold: 2 }, () => 1_000_000);

    // Act: one request fails five times over three keys, with a network error besides
    for (const key of ['a', 'a', 'b', 'c', 'c']) health.failed(T, key, 'poisoned');
    health.unreachable(T, 'poisoned');

    // Assess: one failure; a second request's failure opens the circuit
    expect(health.circuits()[0]).toMatchObject({ state: 'closed', consecutiveFailures: 1 });
    health.failed(T, 'a', 'another');
    expect(health.admit(T).admitted).toBe(false);
  });

  it('charges no key for a request that failed on two keys', () => {
    const health = new InstanceHealth(policy, () => 1_000_000);
    health.failed(T, 'a', 'poisoned');
    health.failed(T, 'b', 'poisoned');
    health.answered(T, 'c', 100);
    expect(['a', 'b', 'c'].map((k) => health.score(view(k)))).toEqual([1, 1, 1]);
  });

  it('counts a request afresh once the target answered, and a probe of a reopened circuit at once', () => {
    // Prepare
    let now = 1_000_000;
    const health = new InstanceHealth(
      { ...policy, circuit_failure_threshold: 2, circuit_open_ms: 1000, circuit_half_open_probes: 1 },
      () => now,
    );

    // Act: r1 fails, the target answers (resetting the count), r1 fails again: it counts again
    health.failed(T, 'a', 'r1');
    health.answered(T, 'b', 100);
    health.failed(T, 'a', 'r1');
    expect(health.circuits()[0]).toMatchObject({ consecutiveFailures: 1 });
    health.failed(T, 'a', 'r2');
    expect(health.admit(T).admitted).toBe(false);

    // Assess: after the open time, r1 is let through as a probe; its failure reopens the circuit
    now += 1000;
    expect(health.admit(T).admitted).toBe(true);
    health.failed(T, 'a', 'r1');
    expect(health.circuits()[0]).toMatchObject({ state: 'open' });
  });

  it('tracks nothing when the circuit is disabled', () => {
    const health = new InstanceHealth({ ...policy, circuit_failure_threshold: 0 }, () => 1_000_000);
    for (let i = 0; i < 100; i++) health.failed(T, 'a', `r${i}`);
    expect(health.admit(T).admitted).toBe(true);
    expect(health.circuits()).toEqual([]);
  });

  it('halves a score for a transient scheduled check only, not for a 4xx or no answer', () => {
    const now = 1_000_000;
    const health = new InstanceHealth(policy, () => now);
    expect(health.score(view('a', { outcome: 'transient', at: now - 60_000 }))).toBe(0.5);
    expect(health.score(view('a', { outcome: 'client_error', at: now - 60_000 }))).toBe(1);
    expect(health.score(view('a', { outcome: 'unreachable', at: now - 60_000 }))).toBe(1);
    expect(health.score(view('a', { outcome: 'transient', at: now - 16 * 60_000 }))).toBe(1);
  });
});
