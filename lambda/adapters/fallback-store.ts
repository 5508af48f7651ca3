import type {
  AcquireRequest,
  Acquisition,
  KeyStateStore,
  KeyStateUpdate,
  KeyView,
} from '../core/key-state.js';
import type { Logger } from '../core/logger.js';

export interface FallbackOptions {
  /** Bound on any one call to the shared store; past it the call counts as failed. */
  readonly timeoutMs: number;
  /** After a failure, serve from local state this long before trying the shared store again. */
  readonly retryAfterMs: number;
  readonly logger: Logger;
  readonly now?: () => number;
  /** Updates kept for replay while the shared store is down (oldest dropped past it, and logged). */
  readonly maxPending?: number;
}

class TimeoutError extends Error {
  constructor(ms: number) {
    super(`shared state store did not answer within ${ms} ms`);
    this.name = 'TimeoutError';
  }
}

/**
 * Keeps the proxy serving when the shared store (DynamoDB) is unreachable, throttled or slow:
 * every call is bounded by `timeoutMs`; on failure the instance switches to its local store for
 * `retryAfterMs`, logs that once, then tries the shared store again and, when it answers, replays the
 * cooldowns and status changes it recorded meanwhile (they are conditional, so replay is safe).
 * Every update is also applied locally, so the fallback starts from what this instance has learnt.
 */
export class FallbackKeyStateStore implements KeyStateStore {
  private readonly now: () => number;
  private degradedUntil = 0;
  private readonly pending: KeyStateUpdate[] = [];
  private replaying: Promise<void> | undefined;

  constructor(
    private readonly shared: KeyStateStore,
    private readonly local: KeyStateStore,
    private readonly options: FallbackOptions,
  ) {
    this.now = options.now ?? Date.now;
  }

  /** True while requests are served from local state. */
  get degraded(): boolean {
    return this.now() < this.degradedUntil;
  }

  async acquire(request: AcquireRequest): Promise<Acquisition> {
    // A request never waits on shared state for longer than its allowance, however many calls it makes.
    const allowance = Math.min(this.options.timeoutMs, request.waitBudgetMs ?? this.options.timeoutMs);
    if (!this.degraded && allowance > 0) {
      try {
        const result = await this.bounded(this.shared.acquire(request), allowance);
        this.recovered();
        return result;
      } catch (err) {
        this.fail('acquire', err);
      }
    }
    return this.local.acquire(request);
  }

  async record(update: KeyStateUpdate): Promise<void> {
    await this.local.record(update);
    if (this.degraded) {
      this.keep(update);
      return;
    }
    try {
      await this.bounded(this.shared.record(update));
    } catch (err) {
      this.fail('record', err);
      this.keep(update);
    }
  }

  async describe(group: string, keyIds: readonly string[]): Promise<KeyView[]> {
    if (!this.degraded) {
      try {
        return await this.bounded(this.shared.describe(group, keyIds));
      } catch (err) {
        this.fail('describe', err);
      }
    }
    return this.local.describe(group, keyIds);
  }

  async flush(): Promise<void> {
    if (this.replaying !== undefined) await this.replaying;
    if (this.degraded) return;
    try {
      await this.bounded(this.shared.flush());
    } catch (err) {
      this.fail('flush', err);
    }
  }

  private bounded<T>(work: Promise<T>, ms = this.options.timeoutMs): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new TimeoutError(ms)), ms);
    });
    // The shared call may still settle after the timeout; its outcome is then ignored.
    work.catch(() => undefined);
    return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
  }

  /**
   * A failed call is served locally. Only an outage (network, timeout, throttling, 5xx, missing table or
   * access) switches the instance to local state; a request DynamoDB rejects as invalid does not.
   */
  private fail(operation: string, err: unknown): void {
    if (!isOutage(err)) {
      this.options.logger.warn('shared state rejected a call', { operation, error: errorName(err) });
      return;
    }
    const wasDegraded = this.degraded;
    this.degradedUntil = this.now() + this.options.retryAfterMs;
    if (!wasDegraded) {
      // Start from what the shared store last knew: other instances' cooldowns and dead keys.
      for (const update of this.shared.snapshot?.() ?? []) void this.local.record(update);
      this.options.logger.error('shared state unavailable; serving from local state', {
        operation,
        error: errorName(err),
        retryInMs: this.options.retryAfterMs,
      });
    }
  }

  private recovered(): void {
    if (this.pending.length === 0 || this.replaying !== undefined) return;
    const updates = this.pending.splice(0);
    this.options.logger.info('shared state back; replaying local updates', { updates: updates.length });
    this.replaying = (async () => {
      for (const [i, update] of updates.entries()) {
        try {
          await this.bounded(this.shared.record(update));
        } catch (err) {
          if (!isOutage(err)) {
            // It will never be accepted: drop it (and say so) rather than block those behind it.
            this.options.logger.warn('dropped a state update the shared store rejects', {
              kind: update.kind,
              keyId: update.keyId,
              error: errorName(err),
            });
            continue;
          }
          this.pending.unshift(...updates.slice(i));
          this.fail('replay', err);
          break;
        }
      }
    })().finally(() => {
      this.replaying = undefined;
    });
  }

  private keep(update: KeyStateUpdate): void {
    // Success counters are statistics, not state: losing them while degraded changes no decision.
    if (update.kind === 'success') return;
    this.pending.push(update);
    const max = this.options.maxPending ?? 10_000;
    if (this.pending.length > max) {
      const dropped = this.pending.splice(0, this.pending.length - max);
      this.options.logger.warn('dropped oldest pending state updates', { dropped: dropped.length });
    }
  }
}

/** Errors that mean "the request was wrong", not "DynamoDB is unavailable". */
const REJECTIONS = new Set(['ValidationException', 'SerializationException']);

function errorName(err: unknown): string {
  return err instanceof Error ? err.name : 'unknown';
}

export function isOutage(err: unknown): boolean {
  return !REJECTIONS.has(errorName(err));
}
