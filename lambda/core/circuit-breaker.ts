/**
 * A circuit breaker per upstream target. It opens after `failureThreshold` consecutive transient
 * failures (5xx, network, timeouts) across all keys — never for 429s or other 4xx, which prove the
 * upstream is answering. While open it refuses at once; after `openMs` it lets `halfOpenProbes` requests
 * through: one success closes it, one failure opens it again. Per instance; pure apart from the clock it
 * is given.
 */

export interface CircuitOptions {
  /** Consecutive transient failures that open the circuit; 0 disables it. */
  readonly failureThreshold: number;
  readonly openMs: number;
  readonly halfOpenProbes: number;
}

export type CircuitState = 'closed' | 'open' | 'half_open';

export interface CircuitView {
  readonly target: string;
  readonly state: CircuitState;
  readonly consecutiveFailures: number;
  /** When an open circuit lets probes through (epoch ms). */
  readonly openUntil: number | undefined;
}

interface Circuit {
  state: CircuitState;
  failures: number;
  openUntil: number;
  probes: number;
  /** When the current round of half-open probes began. */
  probingSince: number;
}

export type Admission = { readonly admitted: true } | { readonly admitted: false; readonly retryAt: number };

export class CircuitBreakers {
  private readonly circuits = new Map<string, Circuit>();

  constructor(private readonly options: CircuitOptions) {}

  /** May a request go to `target` now? A half-open circuit admits its probes and no more. */
  admit(target: string, now: number): Admission {
    if (this.options.failureThreshold === 0) return { admitted: true };
    const c = this.circuits.get(target);
    if (c === undefined || c.state === 'closed') return { admitted: true };
    if (c.state === 'open') {
      if (now < c.openUntil) return { admitted: false, retryAt: c.openUntil };
      c.state = 'half_open';
      c.probes = 0;
      c.probingSince = now;
    }
    if (c.probes >= this.options.halfOpenProbes) {
      // A probe that never reported (its request ended before reaching Gemini) must not hold the
      // circuit half-open for ever: after another open period, a new round of probes may go.
      if (now - c.probingSince < this.options.openMs) {
        return { admitted: false, retryAt: c.probingSince + this.options.openMs };
      }
      c.probes = 0;
      c.probingSince = now;
    }
    c.probes++;
    return { admitted: true };
  }

  /** The upstream answered (any status but a transient failure): it is alive. */
  succeeded(target: string): void {
    const c = this.circuits.get(target);
    if (c === undefined) return;
    c.state = 'closed';
    c.failures = 0;
    c.probes = 0;
  }

  /** A transient failure: counts towards opening; in half-open, opens again at once. True if it opened. */
  failed(target: string, now: number): boolean {
    if (this.options.failureThreshold === 0) return false;
    let c = this.circuits.get(target);
    if (c === undefined) {
      c = { state: 'closed', failures: 0, openUntil: 0, probes: 0, probingSince: 0 };
      this.circuits.set(target, c);
    }
    c.failures++;
    if (c.state === 'half_open' || c.failures >= this.options.failureThreshold) {
      c.state = 'open';
      c.openUntil = now + this.options.openMs;
      c.probes = 0;
      return true;
    }
    return false;
  }

  /** Every circuit that has seen a failure, for `/health/detailed` and metrics. */
  views(now: number): CircuitView[] {
    return [...this.circuits.entries()].map(([target, c]) => ({
      target,
      state: c.state === 'open' && now >= c.openUntil ? 'half_open' : c.state,
      consecutiveFailures: c.failures,
      openUntil: c.state === 'open' ? c.openUntil : undefined,
    }));
  }
}
