import { stateWaitAllowanceMs } from '../core/config/derived.js';
import type {
  AcquireRequest,
  Acquisition,
  KeyStateStore,
  KeyStateUpdate,
  KeyView,
} from '../core/key-state.js';
import type { Logger } from '../core/logger.js';
import { hasLimits } from '../core/quota.js';

/** What requests that need a budget claim get while the shared store is down. */
export type OutagePolicy = 'serve_local' | 'refuse';

export interface FallbackOptions {
  /** How long a call may go unanswered before it counts as a failure (`state.timeout_ms`). */
  readonly timeoutMs: number;
  /**
   * The same for calls made before the shared store first answered: a fresh instance's first calls
   * open a connection and load credentials (`state.cold_timeout_ms`, default 2000; never below timeoutMs).
   */
  readonly coldTimeoutMs?: number;
  /** Consecutive failures that make an outage (`state.outage_failures`, default 3). */
  readonly outageFailures?: number;
  /** During an outage, serve budget claims from local budgets or refuse them (default serve_local). */
  readonly onOutage?: OutagePolicy;
  /** Once the store counts as down, serve from local state this long before trying it again. */
  readonly retryAfterMs: number;
  readonly logger: Logger;
  readonly now?: () => number;
  /** Updates kept for replay while the shared store is down (oldest dropped past it, and logged). */
  readonly maxPending?: number;
  /**
   * How this store learns that the shared store is up: `calls` (default), when a call to it resolves;
   * `reported`, only through {@link FallbackKeyStateStore.heard}, which the owner calls on every answer
   * the shared store's client receives — a call that resolves from a cache proves nothing.
   */
  readonly answers?: 'calls' | 'reported';
}

class TimeoutError extends Error {
  constructor(ms: number) {
    super(`shared state store did not answer within ${ms} ms`);
    this.name = 'TimeoutError';
  }
}

/** What one call to the shared store came to. */
type Outcome<T> =
  | { readonly kind: 'answer'; readonly value: T }
  /** The store answered that the call is wrong (e.g. ValidationException): it is up. */
  | { readonly kind: 'rejected' }
  /** An error (counted as a failure); the store is not down (yet). */
  | { readonly kind: 'failed' }
  /** No answer within the wait given (each full bound of it counted as a failure); not down (yet). */
  | { readonly kind: 'unanswered' }
  /** The store counts as down now: the outage policy applies. */
  | { readonly kind: 'down' };

/** Pause before a budget claim is sent again after an error answer. */
const CLAIM_RETRY_PAUSE_MS = 50;
/** Retry-After for a claim refused because the store, though not down, did not answer in time. */
const SLOW_RETRY_MS = 1000;

/**
 * Keeps the proxy serving when the shared store (DynamoDB) fails, without mistaking slow for down.
 *
 * **Outage.** The store counts as down on a hard signal (connection refused, host not found, missing
 * table, access or credentials refused) or after `outageFailures` consecutive failed calls. A call fails
 * on an error, or when `timeoutMs` passes without an answer (`coldTimeoutMs` for calls made before the
 * store first answered: a fresh instance opens a connection and loads credentials). Calls that fail
 * together count once: a failure counts only if none was counted since its call started, so concurrent
 * calls can't make an outage out of one slow moment. Any answer, even one that came after its call was
 * given up on, resets the count. Down, the instance serves from its local store for `retryAfterMs`, logs
 * that once, then tries the store again and, when it answers, replays the cooldowns and status changes it
 * recorded meanwhile (they are conditional, so replay is safe). Every update is also applied locally.
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
export class FallbackKeyStateStore implements KeyStateStore {
  private readonly now: () => number;
  private readonly coldTimeoutMs: number;
  private readonly outageFailures: number;
  private readonly allowanceMs: number;
  private degradedUntil = 0;
  private readonly pending: KeyStateUpdate[] = [];
  private replaying: Promise<void> | undefined;
  /** Consecutive counted failures; any answer resets it. */
  private failures = 0;
  /** Bumped by every counted failure: a call counts its failure only if none was counted since it started. */
  private epoch = 0;
  /** The store has answered at least once (the connection is warm). */
  private answeredOnce = false;
  /** A call already waited the cold bound without an answer: later calls get `timeoutMs`. */
  private coldSpent = false;
  /** Calls waiting on the store, told when it comes to count as down. */
  private readonly waiting = new Set<() => void>();

  constructor(
    private readonly shared: KeyStateStore,
    private readonly local: KeyStateStore,
    private readonly options: FallbackOptions,
  ) {
    this.now = options.now ?? Date.now;
    this.coldTimeoutMs = Math.max(options.coldTimeoutMs ?? 2000, options.timeoutMs);
    this.outageFailures = options.outageFailures ?? 3;
    this.allowanceMs = stateWaitAllowanceMs({
      timeout_ms: options.timeoutMs,
      cold_timeout_ms: this.coldTimeoutMs,
      outage_failures: this.outageFailures,
    });
  }

  /** True while requests are served from local state. */
  get degraded(): boolean {
    return this.now() < this.degradedUntil;
  }

  /** The shared store answered something (any response, even an error): it is up, the connection warm. */
  heard(): void {
    this.failures = 0;
    this.answeredOnce = true;
  }

  async acquire(request: AcquireRequest): Promise<Acquisition> {
    const claim = needsClaim(request);
    const started = this.now();
    const left = request.waitBudgetMs ?? this.allowanceMs;
    const deadline = started + left;
    // A read or rotation is right without the shared store: it waits one call's bound per request at most.
    const spent = this.allowanceMs - left;
    for (;;) {
      if (this.degraded) return this.outage(request, claim);
      const limit = claim ? deadline - this.now() : Math.min(deadline - this.now(), this.bound() - spent);
      if (limit <= 0) break;
      const outcome = await this.call('acquire', () => this.shared.acquire(request), limit, claim);
      if (outcome.kind === 'answer') {
        this.recovered();
        return outcome.value;
      }
      // A claim DynamoDB rejects as malformed can't be counted there either: the outage policy decides.
      if (outcome.kind === 'down' || (claim && outcome.kind === 'rejected'))
        return this.outage(request, claim);
      if (!claim) return this.local.acquire(request);
      if (outcome.kind === 'unanswered') break;
      // An error answer while the store isn't down: send the claim again, within the allowance.
      await pause(Math.min(CLAIM_RETRY_PAUSE_MS, Math.max(0, deadline - this.now())));
    }
    if (!claim) return this.local.acquire(request);
    this.options.logger.warn('budget claim refused: shared state did not answer in time', {
      group: request.group,
      waitedMs: this.now() - started,
    });
    return { kind: 'state_unavailable', retryAt: this.now() + SLOW_RETRY_MS };
  }

  async record(update: KeyStateUpdate): Promise<void> {
    await this.local.record(update);
    if (this.degraded) {
      this.keep(update);
      return;
    }
    const outcome = await this.call('record', () => this.shared.record(update), this.bound(), false);
    // Not known to have landed: replayed once the store answers again (writes are conditional).
    if (outcome.kind !== 'answer' && outcome.kind !== 'rejected') this.keep(update);
  }

  async describe(group: string, keyIds: readonly string[]): Promise<KeyView[]> {
    if (!this.degraded) {
      const outcome = await this.call(
        'describe',
        () => this.shared.describe(group, keyIds),
        this.bound(),
        false,
      );
      if (outcome.kind === 'answer') return outcome.value;
    }
    return this.local.describe(group, keyIds);
  }

  async flush(): Promise<void> {
    if (this.replaying !== undefined) await this.replaying;
    if (this.degraded) return;
    await this.call('flush', () => this.shared.flush(), this.bound(), false);
  }

  /** The bound of a call made now: `coldTimeoutMs` until the store first answers, else `timeoutMs`. */
  private bound(): number {
    return this.answeredOnce || this.coldSpent ? this.options.timeoutMs : this.coldTimeoutMs;
  }

  /**
   * One call to the shared store, waited on for at most `limitMs`. A call fails (once) on an error or
   * when its bound passes without an answer; an impatient call then stops waiting, a patient one (a
   * budget claim: a second claim could be counted twice) waits on for its answer until `limitMs`, or
   * until the store counts as down. A call given up on runs on: a late answer still shows the store is up.
   */
  private call<T>(
    operation: string,
    start: () => Promise<T>,
    limitMs: number,
    patient: boolean,
  ): Promise<Outcome<T>> {
    const cold = !this.answeredOnce && !this.coldSpent;
    const bound = this.bound();
    const seen = this.epoch;
    let work: Promise<T>;
    try {
      work = start();
    } catch (err) {
      work = Promise.reject(err);
    }
    return new Promise<Outcome<T>>((resolve) => {
      let done = false;
      let counted = false;
      let timer: NodeJS.Timeout | undefined;
      const settle = (outcome: Outcome<T>) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        this.waiting.delete(down);
        resolve(outcome);
      };
      const down = () => settle({ kind: 'down' });
      this.waiting.add(down);
      work.then(
        (value) => {
          this.answered();
          settle({ kind: 'answer', value });
        },
        (err: unknown) => {
          if (!isOutage(err)) {
            this.answered();
            if (!done) {
              this.options.logger.warn('shared state rejected a call', { operation, error: errorName(err) });
            }
            settle({ kind: 'rejected' });
            return;
          }
          // A call fails once: an error after its bound passed adds nothing to what was counted.
          if (done) return;
          if (!counted) this.failed(operation, err, seen);
          settle(this.degraded ? { kind: 'down' } : { kind: 'failed' });
        },
      );
      if (limitMs <= 0) {
        settle({ kind: 'unanswered' });
        return;
      }
      timer = setTimeout(
        () => {
          if (bound > limitMs) return settle({ kind: 'unanswered' });
          // Its bound passed without an answer: the call failed (counted once however many calls waited).
          counted = true;
          if (cold) this.coldSpent = true;
          this.failed(operation, new TimeoutError(bound), seen);
          if (this.degraded) return settle({ kind: 'down' });
          if (!patient || bound === limitMs) return settle({ kind: 'unanswered' });
          timer = setTimeout(() => settle({ kind: 'unanswered' }), limitMs - bound);
        },
        Math.min(bound, limitMs),
      );
    });
  }

  /** A call resolved (in time or late): the store is up, unless only reported answers count. */
  private answered(): void {
    if (this.options.answers !== 'reported') this.heard();
  }

  /**
   * A call failed (an error, or its bound passed without an answer). It counts unless another failure
   * was counted since the call started (`seen`): calls failing together are one failure. A hard signal,
   * or `outageFailures` counted in a row, makes an outage.
   */
  private failed(operation: string, err: unknown, seen: number): void {
    const hard = isHardOutage(err);
    if (!hard && seen !== this.epoch) return;
    this.epoch++;
    this.failures++;
    if (hard || this.failures >= this.outageFailures) {
      this.degrade(operation, err);
      return;
    }
    this.options.logger.warn('shared state call failed', {
      operation,
      error: errorName(err),
      failures: this.failures,
      outageAt: this.outageFailures,
    });
  }

  private degrade(operation: string, err: unknown): void {
    const wasDegraded = this.degraded;
    this.degradedUntil = this.now() + this.options.retryAfterMs;
    // Still down when it is tried again: one more failure then is enough.
    this.failures = Math.max(this.failures, this.outageFailures);
    if (!wasDegraded) {
      // Start from what the shared store last knew: other instances' cooldowns and dead keys.
      for (const update of this.shared.snapshot?.() ?? []) void this.local.record(update);
      this.options.logger.error('shared state unavailable; serving from local state', {
        operation,
        error: errorName(err),
        retryInMs: this.options.retryAfterMs,
        budgets: this.options.onOutage === 'refuse' ? 'refused' : 'local',
      });
    }
    for (const stop of [...this.waiting]) stop();
  }

  /** While down: budget claims per the outage policy; everything else from local state. */
  private outage(request: AcquireRequest, claim: boolean): Promise<Acquisition> | Acquisition {
    if (claim && this.options.onOutage === 'refuse') {
      return { kind: 'state_unavailable', retryAt: Math.max(this.degradedUntil, this.now() + 1) };
    }
    return this.local.acquire(request);
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
        const outcome = await this.call('replay', () => this.shared.record(update), this.bound(), false);
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

/** A request that spends a shared budget: a group with limits, or a client with its own rpm. */
function needsClaim(request: AcquireRequest): boolean {
  return hasLimits(request.limits) || request.client !== undefined;
}

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Errors that mean "the request was wrong", not "DynamoDB is unavailable". */
const REJECTIONS = new Set(['ValidationException', 'SerializationException']);

/** Errors that mean DynamoDB can't be used at all, however often it is asked: an outage at once. */
const HARD_ERRORS = new Set([
  'ResourceNotFoundException',
  'AccessDeniedException',
  'UnrecognizedClientException',
  'InvalidSignatureException',
  'MissingAuthenticationTokenException',
  'ExpiredTokenException',
  'CredentialsProviderError',
]);
/** Network errors that mean nothing is there to answer (as opposed to a reset or a timeout). */
const HARD_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH']);

function errorName(err: unknown): string {
  return err instanceof Error ? err.name : 'unknown';
}

function errorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}

export function isOutage(err: unknown): boolean {
  return !REJECTIONS.has(errorName(err));
}

/** A failure that makes an outage on its own: connection refused, no such host, no table, no access. */
export function isHardOutage(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  if (HARD_ERRORS.has(err.name)) return true;
  const codes = [errorCode(err), ...(err instanceof AggregateError ? err.errors.map(errorCode) : [])];
  return codes.some((c) => c !== undefined && HARD_CODES.has(c));
}
