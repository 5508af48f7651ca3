/**
 * A key's health score, 0.0–1.0, from its recent outcomes on this instance:
 *
 *   score = successRatio × 0.5^consecutiveFailures × latencyFactor
 *
 * - successRatio: exponentially weighted share of successes (each outcome weighs ALPHA = 0.2, so the last
 *   ~10 calls dominate); starts at 1.
 * - consecutiveFailures: transient failures (5xx, network, timeouts) since the last success; each halves.
 * - latencyFactor: 1 up to 2 s of weighted time to first byte, falling linearly to 0.5 at 20 s and beyond.
 *
 * Quota answers (429) and the client's own errors say nothing about the key's health and are not counted.
 * A passed-over key gets no new outcomes, so time heals it: each minute without a failure halves what it
 * lacks of a full success ratio, and after a minute the consecutive-failure penalty lifts — the key gets
 * traffic again and earns (or loses) its score on fresh outcomes.
 */
export const ALPHA = 0.2;
const FAST_MS = 2_000;
const RECOVER_MS = 60_000;
const SLOW_MS = 20_000;

export function healthScore(
  successRatio: number,
  consecutiveFailures: number,
  latencyMs: number | undefined,
): number {
  const latencyFactor =
    latencyMs === undefined || latencyMs <= FAST_MS
      ? 1
      : Math.max(0.5, 1 - (0.5 * (latencyMs - FAST_MS)) / (SLOW_MS - FAST_MS));
  const score = successRatio * 0.5 ** consecutiveFailures * latencyFactor;
  return Math.round(Math.min(1, Math.max(0, score)) * 100) / 100;
}

interface Tracked {
  successRatio: number;
  consecutiveFailures: number;
  latencyMs: number | undefined;
  lastFailureAt: number;
}

/** Scores of the keys this instance has used, updated as outcomes arrive. */
export class HealthScores {
  private readonly keys = new Map<string, Tracked>();

  constructor(private readonly now: () => number = Date.now) {}

  success(keyId: string, latencyMs: number): void {
    const k = this.get(keyId);
    k.successRatio = k.successRatio * (1 - ALPHA) + ALPHA;
    k.consecutiveFailures = 0;
    k.latencyMs = k.latencyMs === undefined ? latencyMs : k.latencyMs * (1 - ALPHA) + latencyMs * ALPHA;
  }

  failure(keyId: string): void {
    const k = this.get(keyId);
    k.successRatio *= 1 - ALPHA;
    k.consecutiveFailures++;
    k.lastFailureAt = this.now();
  }

  /** 1 for a key never seen. */
  score(keyId: string): number {
    const k = this.keys.get(keyId);
    if (k === undefined) return 1;
    const quietMs = this.now() - k.lastFailureAt;
    if (k.consecutiveFailures === 0 || quietMs < RECOVER_MS) {
      return healthScore(k.successRatio, k.consecutiveFailures, k.latencyMs);
    }
    const ratio = 1 - (1 - k.successRatio) * 0.5 ** (quietMs / RECOVER_MS);
    return healthScore(ratio, 0, k.latencyMs);
  }

  private get(keyId: string): Tracked {
    let k = this.keys.get(keyId);
    if (k === undefined) {
      k = { successRatio: 1, consecutiveFailures: 0, latencyMs: undefined, lastFailureAt: 0 };
      this.keys.set(keyId, k);
    }
    return k;
  }
}
