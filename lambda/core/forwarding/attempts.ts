/** What the forwarding pieces share: the job, their dependencies, and one request's bookkeeping. */
import type { ProxyConfig } from '../config/schema.js';
import type { Scrubber } from '../credentials.js';
import type { RequestDeadline } from '../deadline.js';
import type { ProxyResponse, UpstreamClient } from '../http.js';
import type { InstanceHealth } from '../instance-health.js';
import type {
  AcquireRequest,
  Acquisition,
  BudgetMetric,
  ClientLimit,
  KeyStateStore,
} from '../key-state/port.js';
import type { Logger } from '../logger.js';
import type { RequestMetrics } from '../metrics.js';
import type { StateWrites } from '../state-writes.js';
import type { KeyGroup, UpstreamCall } from './groups.js';
import type { ForwardedRequest, ForwardFacts, RequestLog } from './request-log.js';

/** A request the proxy has read, routed and checked, to be served by Gemini with some group's key. */
export interface ForwardJob extends UpstreamCall, ForwardedRequest {
  readonly model: string;
  readonly groups: readonly KeyGroup[];
  readonly started: number;
  /** The client's per-minute limit, if it has one. */
  readonly client: ClientLimit | undefined;
  /** Estimated input tokens (generation calls; 0 otherwise), claimed where a token budget applies. */
  readonly tokens: number;
}

export interface ForwarderDeps {
  readonly config: ProxyConfig;
  readonly store: KeyStateStore;
  readonly upstream: UpstreamClient;
  readonly logger: Logger;
  readonly now: () => number;
  readonly scrubber: Scrubber;
  /** Circuits and health scores: the instance's, surviving a change of configuration. */
  readonly health: InstanceHealth;
  readonly writes: StateWrites;
  /** Where each request's log line and metrics go. */
  readonly requests: RequestLog;
}

/**
 * How a forwarded request ends: a Gemini success `relayed` as it streams (logged when its stream ends), or
 * any other answer (Gemini's error, a cancellation, the proxy's own `refusal`), logged at once.
 */
export interface Ending {
  readonly response: ProxyResponse;
  readonly relayed?: boolean;
  readonly refusal?: RequestMetrics['refusal'];
}

/** How many Gemini calls the answer took (0: refused without calling Gemini). */
export const ATTEMPTS_HEADER = 'x-upstream-attempts';

/** One request's bookkeeping: what its calls did, for the loop's choices and the final log line. */
export class Attempts implements ForwardFacts {
  count = 0;
  retries = 0;
  readonly upstreamErrors = { transient: 0, quota: 0, deadKey: 0 };
  keyCooldowns = 0;
  timeToFirstByteMs: number | undefined;
  refusal: RequestMetrics['refusal'];
  tokens: { input: number; output: number } | undefined;
  group: string | undefined;
  keyId: string | undefined;
  /** The last transient failure, answered if no key succeeds. */
  lastFailure: ProxyResponse | undefined;
  /** Soonest end of a quota cooldown this request caused, for Retry-After if attempts run out. */
  quotaRetryAt: number | undefined;
  /** Keys this request parked for its model (Gemini reported `limit: 0`). */
  parks = 0;
  /** Limits this request learned from Gemini's 429s. */
  limitsLearned = 0;
  /** The budget limit behind the proxy's own quota refusal, if that is how the request ended. */
  budgetRefusal: BudgetMetric | undefined;
  /** The client's per-minute limit has been counted (with the request's first acquisition). */
  clientCounted = false;
  /** A generation call of this request already timed out waiting for Gemini's headers. */
  slow = false;
  /** Keys that answered this request 500: a second one shows the failure follows the request. */
  readonly internalErrors = new Set<string>();

  constructor(
    readonly deadline: RequestDeadline,
    private readonly deps: Pick<ForwarderDeps, 'store' | 'health' | 'now'>,
    private readonly policy: ProxyConfig['policy'],
    /** What is left of this request's allowance for waiting on shared state. */
    private stateWaitMs: number,
  ) {}

  /** The request's own signal: the client going away, or its deadline passing. */
  get signal(): AbortSignal {
    return this.deadline.signal;
  }

  /** True once the request has made all the Gemini calls it may. */
  get spent(): boolean {
    return this.count >= this.policy.max_attempts;
  }

  /**
   * Asked before every Gemini call, a key's first or a retry: may the request call `target` now? Not once
   * its attempts are spent; not while the target's circuit is open (this request's own failures may have
   * opened it), and then `circuitRetryAt` says when it lets calls through again.
   */
  mayCall(target: string): { readonly go: true } | { readonly go: false; readonly circuitRetryAt?: number } {
    if (this.spent) return { go: false };
    const admission = this.deps.health.admit(target);
    return admission.admitted ? { go: true } : { go: false, circuitRetryAt: admission.retryAt };
  }

  /**
   * Bookkeeping for the next model of a fallback chain: the same deadline, the client's limit already
   * counted, what is left of the allowance for shared state; calls counted afresh.
   */
  forFallback(): Attempts {
    const next = new Attempts(this.deadline, this.deps, this.policy, this.stateWaitMs);
    next.clientCounted = this.clientCounted;
    return next;
  }

  /** Asks the store for a key, charging the time spent to the request's allowance for shared state. */
  async acquire(request: AcquireRequest): Promise<Acquisition> {
    const started = this.deps.now();
    try {
      return await this.deps.store.acquire({ ...request, waitBudgetMs: this.stateWaitMs });
    } finally {
      this.stateWaitMs -= this.deps.now() - started;
    }
  }
}
