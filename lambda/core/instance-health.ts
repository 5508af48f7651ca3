import { type Admission, CircuitBreakers, type CircuitView } from './circuit-breaker.js';
import type { ProxyConfig } from './config/schema.js';
import { HealthScores } from './health-score.js';
import type { HealthPreference, KeyView } from './key-state/port.js';

/** How long the scheduled check's transient answer for a key halves its score. */
const CHECK_DOUBT_MS = 15 * 60_000;

/** Transient failures of one target since its last good answer, and which keys took them. */
interface Streak {
  /** Key id → failures it took in this streak; charged to the key once the target proves up. */
  readonly suspects: Map<string, number>;
  /** More than one key failed: the target was failing, not a key. Nothing of it is charged. */
  wide: boolean;
}

/**
 * What one instance learns about Gemini from its own calls, kept for the instance's life (a new
 * configuration does not reset it): each target's circuit breaker, and each key's health score.
 *
 * Blame goes where the evidence points. A transient failure (5xx) is charged to the key only once the
 * target answers again and no other key failed in between: if several keys fail in a row, the target
 * was down (a Gemini-wide 503 storm) and no key is charged. Network errors and timeouts never reach a
 * key's score (nothing about them is the key's); they count only towards the target's circuit.
 *
 * The circuit counts requests, not calls: a request's first failure at a target counts, its retries and
 * other keys don't. A request that fails everywhere (a body Gemini can't handle) is one client's
 * problem, and must not take the target away from every other client.
 */
export class InstanceHealth {
  private readonly breakers: CircuitBreakers;
  private readonly scores: HealthScores;
  private readonly streaks = new Map<string, Streak>();
  /** Per target: the requests whose failure counted towards its circuit since it last answered or opened. */
  private readonly counted = new Map<string, Set<string>>();
  private readonly circuitEnabled: boolean;
  /** What key selection weighs: these scores, with the configured floor (relative to the best key). */
  readonly selection: HealthPreference;

  constructor(
    policy: ProxyConfig['policy'],
    private readonly now: () => number = Date.now,
  ) {
    this.breakers = new CircuitBreakers({
      failureThreshold: policy.circuit_failure_threshold,
      openMs: policy.circuit_open_ms,
      halfOpenProbes: policy.circuit_half_open_probes,
    });
    this.circuitEnabled = policy.circuit_failure_threshold > 0;
    this.scores = new HealthScores(now);
    this.selection = { score: (key) => this.score(key), floor: policy.health_floor };
  }

  /** May a request go to `target` now? */
  admit(target: string): Admission {
    return this.breakers.admit(target, this.now());
  }

  /**
   * The target answered with anything but a transient failure (a 429 or 4xx proves it up too);
   * `latencyMs` is given for a success, which also counts for the key.
   */
  answered(target: string, keyId: string, latencyMs?: number): void {
    this.breakers.succeeded(target);
    this.counted.delete(target);
    const streak = this.streaks.get(target);
    if (streak !== undefined) {
      this.streaks.delete(target);
      if (!streak.wide) {
        for (const [suspect, failures] of streak.suspects) {
          for (let i = 0; i < failures; i++) this.scores.failure(suspect);
        }
      }
    }
    if (latencyMs !== undefined) this.scores.success(keyId, latencyMs);
  }

  /**
   * A 500/502/503 from `keyId` for request `requestId`: counts towards the circuit if it is the request's
   * first failure there; the key is a suspect until the target answers.
   */
  failed(target: string, keyId: string, requestId: string): void {
    this.countFailure(target, requestId);
    let streak = this.streaks.get(target);
    if (streak === undefined) {
      streak = { suspects: new Map(), wide: false };
      this.streaks.set(target, streak);
    }
    if (streak.wide) return;
    if (streak.suspects.size > 0 && !streak.suspects.has(keyId)) {
      streak.wide = true;
      streak.suspects.clear();
      return;
    }
    streak.suspects.set(keyId, (streak.suspects.get(keyId) ?? 0) + 1);
  }

  /** No answer at all (network error, connect timeout): the target's problem, never the key's. */
  unreachable(target: string, requestId: string): void {
    this.countFailure(target, requestId);
  }

  /** One failure per request towards the target's circuit. */
  private countFailure(target: string, requestId: string): void {
    if (!this.circuitEnabled) return;
    let requests = this.counted.get(target);
    if (requests === undefined) {
      requests = new Set();
      this.counted.set(target, requests);
    }
    if (requests.has(requestId)) return;
    requests.add(requestId);
    // Once open, the streak that opened it is over: a probe's failure must count (and reopen) afresh.
    // So the set holds fewer requests than the threshold, plus those failing at the same moment.
    if (this.breakers.failed(target, this.now())) this.counted.delete(target);
  }

  /** The key itself is dead (invalid, suspended, …). */
  deadKey(keyId: string): void {
    this.scores.failure(keyId);
  }

  /**
   * A key's health score: this instance's from its own outcomes, halved while the scheduled check's
   * latest answer for the key (within the last 15 minutes) was a transient failure.
   */
  score(key: KeyView): number {
    const own = this.scores.score(key.keyId);
    const check = key.lastCheck;
    const doubted = check?.outcome === 'transient' && this.now() - check.at < CHECK_DOUBT_MS;
    return doubted ? Math.round(own * 50) / 100 : own;
  }

  /** The upstream targets' circuits, for `/health/detailed`. */
  circuits(): CircuitView[] {
    return this.breakers.views(this.now());
  }

  openCircuits(): number {
    return this.circuits().filter((c) => c.state === 'open').length;
  }
}
