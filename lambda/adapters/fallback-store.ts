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
    if (!this.degraded) {
      try {
        const result = await this.bounded(this.shared.acquire(request));
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

  private bounded<T>(work: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new TimeoutError(this.options.timeoutMs)), this.options.timeoutMs);
    });
    // The shared call may still settle after the timeout; its outcome is then ignored.
    work.catch(() => undefined);
    return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
  }

  private fail(operation: string, err: unknown): void {
    const wasDegraded = this.degraded;
    this.degradedUntil = this.now() + this.options.retryAfterMs;
    if (!wasDegraded) {
      this.options.logger.error('shared state unavailable; serving from local state', {
        operation,
        error: err instanceof Error ? err.name : 'unknown',
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
