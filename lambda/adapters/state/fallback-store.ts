import { stateWaitAllowanceMs } from '../../core/config/derived.js';
import type * as Port from '../../core/key-state/port.js';
import { hasLimits } from '../../core/key-state/quota.js';
import { OutageDetector, type OutageOptions } from './outage-detector.js';

/** What requests that need a budget claim get while the shared store is down. */
export type OutagePolicy = 'serve_local' | 'refuse';

export interface FallbackOptions extends OutageOptions {
  /** During an outage, serve budget claims from local budgets or refuse them (default serve_local). */
  readonly onOutage?: OutagePolicy;
  /** Updates kept for replay while the shared store is down (oldest dropped past it, and logged). */
  readonly maxPending?: number;
}

/** Pause before a budget claim is sent again after an error answer. */
const CLAIM_RETRY_PAUSE_MS = 50;
/** Retry-After for a claim refused because the store, though not down, did not answer in time. */
const SLOW_RETRY_MS = 1000;

/**
 * Keeps the proxy serving when the shared store (DynamoDB) fails, without mistaking slow for down.
 *
 * **Outage.** When the store counts as down ({@link OutageDetector}: a hard signal, or `outageFailures`
 * failed calls in a row), the instance serves from its local store for `retryAfterMs`, logs that once,
 * then tries the store again and, when it answers, replays the cooldowns and status changes it recorded
 * meanwhile (they are conditional, so replay is safe). Every update is also applied locally.
 *
 * **Not down.** A call that only reads or rotates (no budget claim) waits one call's bound at most per
 * request; unanswered, that call is served from local state. A budget claim (`limits`, or a client `rpm`)
 * is never served locally while the store is up: it waits for its answer — until the store answers, counts
 * as down (then `onOutage` decides), or the request's allowance (`waitBudgetMs`) runs out (then
 * `state_unavailable`). It is not sent twice (a claim that timed out may still land); one that errs is
 * sent again within the allowance, one DynamoDB rejects as malformed goes to `onOutage`. A claim given up
 * on may land all the same: a unit then goes unused (counting too much is safe for a limit; counting too
 * little is not).
 */
export class FallbackKeyStateStore implements Port.KeyStateStore {
  private readonly now: () => number;
  private readonly allowanceMs: number;
  private readonly outages: OutageDetector;
  private readonly pending: Port.KeyStateUpdate[] = [];
  private replaying: Promise<void> | undefined;

  constructor(
    private readonly shared: Port.KeyStateStore,
    private readonly local: Port.KeyStateStore,
    private readonly options: FallbackOptions,
  ) {
    this.now = options.now ?? Date.now;
    this.outages = new OutageDetector(options, (operation, error) => this.wentDown(operation, error));
    this.allowanceMs = stateWaitAllowanceMs({
      timeout_ms: options.timeoutMs,
      cold_timeout_ms: this.outages.coldTimeoutMs,
      outage_failures: this.outages.outageFailures,
    });
  }

  /** True while requests are served from local state. */
  get degraded(): boolean {
    return this.outages.down;
  }

  /** The shared store answered something (any response, even an error): it is up, the connection warm. */
  heard(): void {
    this.outages.heard();
  }

  async acquire(request: Port.AcquireRequest): Promise<Port.Acquisition> {
    // Limits learned from Gemini make a claim too while DynamoDB is up (served locally, a slow call would
    // pass them, and every park another instance wrote); once it is down, only configured limits are
    // subject to `on_outage`.
    const configured = needsClaim(request);
    const claim = configured || this.shared.needsClaim?.(request) === true;
    const started = this.now();
    const left = request.waitBudgetMs ?? this.allowanceMs;
    const deadline = started + left;
    // A read or rotation is right without the shared store: it waits one call's bound per request at most.
    const spent = this.allowanceMs - left;
    for (;;) {
      if (this.degraded) return this.outage(request, configured);
      const limit = claim
        ? deadline - this.now()
        : Math.min(deadline - this.now(), this.outages.bound() - spent);
      if (limit <= 0) break;
      const outcome = await this.outages.call('acquire', () => this.shared.acquire(request), limit, claim);
      if (outcome.kind === 'answer') {
        this.recovered();
        return outcome.value;
      }
      // A claim DynamoDB rejects as malformed can't be counted there either: the outage policy decides.
      if (outcome.kind === 'down' || (claim && outcome.kind === 'rejected'))
        return this.outage(request, configured);
      if (!claim) return this.localAcquire(request);
      if (outcome.kind === 'unanswered') break;
      // An error answer while the store isn't down: send the claim again, within the allowance.
      await pause(Math.min(CLAIM_RETRY_PAUSE_MS, Math.max(0, deadline - this.now())));
    }
    if (!claim) return this.localAcquire(request);
    this.options.logger.warn('budget claim refused: shared state did not answer in time', {
      group: request.group,
      waitedMs: this.now() - started,
    });
    return { kind: 'state_unavailable', retryAt: this.now() + SLOW_RETRY_MS };
  }

  async record(update: Port.KeyStateUpdate): Promise<void> {
    await this.local.record(update);
    if (update.kind === 'tokens') {
      // A reconciliation is an ADD, not a condition: sent once, never replayed (a replay, or a refund of
      // tokens the shared store never counted, would free budget that was spent). Lost, it errs safe or
      // by one estimate's error, in one window.
      if (update.claim.local !== true && !this.degraded) {
        await this.outages.call('record', () => this.shared.record(update));
      }
      return;
    }
    if (this.degraded) {
      this.keep(update);
      return;
    }
    const outcome = await this.outages.call('record', () => this.shared.record(update));
    // Not known to have landed: replayed once the store answers again (writes are conditional).
    if (outcome.kind !== 'answer' && outcome.kind !== 'rejected') this.keep(update);
  }

  async describe(group: string, keyIds: readonly string[]): Promise<Port.KeyView[]> {
    if (!this.degraded) {
      const outcome = await this.outages.call('describe', () => this.shared.describe(group, keyIds));
      if (outcome.kind === 'answer') return outcome.value;
    }
    return this.local.describe(group, keyIds);
  }

  async learned(group: string, budgets: readonly string[], now: number): Promise<Port.LearnedLimitView[]> {
    const shared = this.shared.learned?.bind(this.shared);
    if (!this.degraded && shared !== undefined) {
      const outcome = await this.outages.call('describe', () => shared(group, budgets, now));
      if (outcome.kind === 'answer') return outcome.value;
    }
    return (await this.local.learned?.(group, budgets, now)) ?? [];
  }

  async flush(): Promise<void> {
    if (this.replaying !== undefined) await this.replaying;
    if (this.degraded) return;
    await this.outages.call('flush', () => this.shared.flush());
  }

  /** The shared store has just come to count as down: start from what it last knew, and say so once. */
  private wentDown(operation: string, error: string): void {
    // What the shared store last knew: other instances' cooldowns and dead keys.
    for (const update of this.shared.snapshot?.() ?? []) void this.local.record(update);
    this.options.logger.error('shared state unavailable; serving from local state', {
      operation,
      error,
      retryInMs: this.options.retryAfterMs,
      budgets: this.options.onOutage === 'refuse' ? 'refused' : 'local',
    });
  }

  /** While down: budget claims per the outage policy; everything else from local state. */
  /** A key from this instance's own state; a budget claim made there is marked as such. */
  private async localAcquire(request: Port.AcquireRequest): Promise<Port.Acquisition> {
    const acquisition = await this.local.acquire(request);
    if (acquisition.kind !== 'key' || acquisition.claim === undefined) return acquisition;
    return { ...acquisition, claim: { ...acquisition.claim, local: true } };
  }

  private outage(request: Port.AcquireRequest, claim: boolean): Promise<Port.Acquisition> | Port.Acquisition {
    if (claim && this.options.onOutage === 'refuse') {
      return { kind: 'state_unavailable', retryAt: Math.max(this.outages.downUntil, this.now() + 1) };
    }
    return this.localAcquire(request);
  }

  private recovered(): void {
    if (this.pending.length === 0 || this.replaying !== undefined) return;
    const updates = this.pending.splice(0);
    this.options.logger.info('shared state back; replaying local updates', { updates: updates.length });
    this.replaying = (async () => {
      for (const [i, update] of updates.entries()) {
        if (this.degraded) {
          this.pending.unshift(...updates.slice(i));
          break;
        }
        const outcome = await this.outages.call('replay', () => this.shared.record(update));
        if (outcome.kind === 'answer') continue;
        if (outcome.kind === 'rejected') {
          // It will never be accepted: drop it (and say so) rather than block those behind it.
          this.options.logger.warn('dropped a state update the shared store rejects', {
            kind: update.kind,
            keyId: update.keyId,
          });
          continue;
        }
        this.pending.unshift(...updates.slice(i));
        break;
      }
    })().finally(() => {
      this.replaying = undefined;
    });
  }

  private keep(update: Port.KeyStateUpdate): void {
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

/** A request that spends a shared budget: a group with limits, or a client with its own rpm. */
function needsClaim(request: Port.AcquireRequest): boolean {
  return hasLimits(request.limits) || request.client !== undefined;
}

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
