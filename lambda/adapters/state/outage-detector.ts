import type { Logger } from '../../core/logger.js';

/** How calls to the shared store are bounded, and what makes an outage. */
export interface OutageOptions {
  /** How long a call may go unanswered before it counts as a failure (`state.timeout_ms`). */
  readonly timeoutMs: number;
  /**
   * The same for calls made before the shared store first answered: a fresh instance's first calls
   * open a connection and load credentials (`state.cold_timeout_ms`, default 2000; never below timeoutMs).
   */
  readonly coldTimeoutMs?: number;
  /** Consecutive failures that make an outage (`state.outage_failures`, default 3). */
  readonly outageFailures?: number;
  /** Once the store counts as down, it stays down this long before it is tried again. */
  readonly retryAfterMs: number;
  readonly logger: Logger;
  readonly now?: () => number;
  /**
   * How the detector learns that the shared store is up: `calls` (default), when a call to it resolves;
   * `reported`, only through {@link OutageDetector.heard}, which the owner calls on every answer the
   * shared store's client receives — a call that resolves from a cache proves nothing.
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
export type Outcome<T> =
  | { readonly kind: 'answer'; readonly value: T }
  /** The store answered that the call is wrong (e.g. ValidationException): it is up. */
  | { readonly kind: 'rejected' }
  /** An error (counted as a failure); the store is not down (yet). */
  | { readonly kind: 'failed' }
  /** No answer within the wait given (each full bound of it counted as a failure); not down (yet). */
  | { readonly kind: 'unanswered' }
  /** The store counts as down now: the outage policy applies. */
  | { readonly kind: 'down' };

/**
 * Tells down from slow for the shared store (DynamoDB). The store counts as down on a hard signal
 * (connection refused, host not found, missing table, access or credentials refused) or after
 * `outageFailures` consecutive failed calls. A call fails on an error, or when `timeoutMs` passes without
 * an answer (`coldTimeoutMs` for calls made before the store first answered: a fresh instance opens a
 * connection and loads credentials). Calls that fail together count once: a failure counts only if none
 * was counted since its call started, so concurrent calls can't make an outage out of one slow moment.
 * Any answer, even one that came after its call was given up on, resets the count. Down, it stays so for
 * `retryAfterMs`; `onDown` hears of it once (the operation and the error's name).
 */
export class OutageDetector {
  /** The bound of calls made before the store first answered (never below `timeoutMs`). */
  readonly coldTimeoutMs: number;
  /** Consecutive counted failures that make an outage. */
  readonly outageFailures: number;
  private until = 0;
  private readonly now: () => number;
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
    private readonly options: OutageOptions,
    private readonly onDown: (operation: string, error: string) => void,
  ) {
    this.now = options.now ?? Date.now;
    this.coldTimeoutMs = Math.max(options.coldTimeoutMs ?? 2000, options.timeoutMs);
    this.outageFailures = options.outageFailures ?? 3;
  }

  /** True while the store counts as down. */
  get down(): boolean {
    return this.now() < this.until;
  }

  /** Until when the store counts as down (epoch ms; in the past while it is up). */
  get downUntil(): number {
    return this.until;
  }

  /** The shared store answered something (any response, even an error): it is up, the connection warm. */
  heard(): void {
    this.failures = 0;
    this.answeredOnce = true;
  }

  /** The bound of a call made now: `coldTimeoutMs` until the store first answers, else `timeoutMs`. */
  bound(): number {
    return this.answeredOnce || this.coldSpent ? this.options.timeoutMs : this.coldTimeoutMs;
  }

  /**
   * One call to the shared store, waited on for at most `limitMs` (default: its bound). A call fails
   * (once) on an error or when its bound passes without an answer; an impatient call (the default) then
   * stops waiting, a patient one (a budget claim: a second claim could be counted twice) waits on for its
   * answer until `limitMs`, or until the store counts as down. A call given up on runs on: a late answer
   * still shows the store is up.
   */
  call<T>(
    operation: string,
    start: () => Promise<T>,
    limitMs = this.bound(),
    patient = false,
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
          settle(this.down ? { kind: 'down' } : { kind: 'failed' });
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
          if (this.down) return settle({ kind: 'down' });
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

  /** The store counts as down for `retryAfterMs` from now; calls still waiting on it stop. */
  private degrade(operation: string, err: unknown): void {
    const wasDown = this.down;
    this.until = this.now() + this.options.retryAfterMs;
    // Still down when it is tried again: one more failure then is enough.
    this.failures = Math.max(this.failures, this.outageFailures);
    if (!wasDown) this.onDown(operation, errorName(err));
    for (const stop of [...this.waiting]) stop();
  }
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

/** A failure that may mean DynamoDB is unavailable (counted), as opposed to a call it rejected as wrong. */
function isOutage(err: unknown): boolean {
  return !REJECTIONS.has(errorName(err));
}

/** A failure that makes an outage on its own: connection refused, no such host, no table, no access. */
export function isHardOutage(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  if (HARD_ERRORS.has(err.name)) return true;
  const codes = [errorCode(err), ...(err instanceof AggregateError ? err.errors.map(errorCode) : [])];
  return codes.some((c) => c !== undefined && HARD_CODES.has(c));
}
