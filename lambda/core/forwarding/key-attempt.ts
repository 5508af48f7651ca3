/** One key's turn at a request: its calls to Gemini, what they teach, and what the policy makes of them. */
import { setTimeout as sleep } from 'node:timers/promises';
import { readText } from '../body.js';
import { classifyUpstreamResponse, type UpstreamOutcome } from '../gemini-errors.js';
import { type ProxyResponse, UpstreamError, type UpstreamResponse } from '../http.js';
import type { BudgetClaim } from '../key-state/port.js';
import { hasLimits } from '../key-state/quota.js';
import { type Decision, decide } from '../policy.js';
import { cancelled, networkFailure } from '../refusals.js';
import { upstreamErrorAnswer } from '../upstream-errors.js';
import type { Attempts, Ending, ForwarderDeps, ForwardJob } from './attempts.js';
import { type KeyGroup, upstreamRequest } from './groups.js';
import { budgetKeys, learnedLimits } from './quota-lessons.js';
import { relay } from './relay.js';

/** What a Gemini call that did not succeed came to: the policy's input, and the client's answer if given. */
interface FailedCall {
  readonly outcome: UpstreamOutcome;
  readonly answer: ProxyResponse;
}

/** Gemini failed (5xx, network, timeout), not the key or the request: answered if no other key succeeds. */
function geminiFailed(outcome: UpstreamOutcome): boolean {
  return outcome.kind === 'transient' || outcome.kind === 'slow' || outcome.kind === 'internal';
}

/** The key is done with: the loop takes the next one. */
export const ROTATE = 'rotate';

/**
 * One key's turn at a request: calls Gemini with it, learns from the answer (the instance's health, the
 * key's state), and acts on the policy's decision — answer, retry the same key, or cool or invalidate
 * it and rotate.
 *
 * The target's circuit is asked before every call ({@link Attempts.mayCall}: by the loop before a key's
 * first call, by {@link KeyAttempt.again} before a retry) and told how each call went as soon as it is known
 * ({@link KeyAttempt.report}, {@link KeyAttempt.unanswered}).
 */
export class KeyAttempt {
  constructor(
    private readonly deps: ForwarderDeps,
    private readonly job: ForwardJob,
    private readonly attempts: Attempts,
    private readonly group: KeyGroup,
    /** The group's upstream for this request: its circuit is the one consulted. */
    private readonly target: string,
    private readonly keyId: string,
    /** The budget claim the key was handed out with (reconciled with Gemini's token count on success). */
    private claim: BudgetClaim | undefined,
  ) {}

  /** Calls Gemini with the key until it answers the request or the key is done with. */
  async run(): Promise<Ending | typeof ROTATE> {
    for (let retries = 0; ; retries++) {
      const failure = await this.call();
      // A success, relayed; or the request was cancelled.
      if ('response' in failure) return failure;
      const decision = decide(failure.outcome, retries, this.deps.now(), this.deps.config.policy);
      this.debug(failure, decision);
      if (decision.action !== 'retry_same_key') return this.act(decision, failure);
      const next = await this.again(decision.delayMs);
      if (next === 'cancelled') return { response: cancelled(this.job.request.signal.aborted) };
      if (next === 'rotate') {
        this.attempts.lastFailure = failure.answer;
        return ROTATE;
      }
    }
  }

  /** Sends one call: a success is relayed; anything else is classified and counted. */
  private async call(): Promise<FailedCall | Ending> {
    const { now, upstream, config } = this.deps;
    const { attempts, job } = this;
    attempts.count++;
    const sent = now();
    try {
      const response = await upstream.send(
        upstreamRequest(job, this.group, this.keyId, attempts.signal, config.upstream),
      );
      attempts.timeToFirstByteMs = now() - sent;
      this.report(response.status);
      if (response.status < 400) return this.succeeded(response, now() - sent);
      return this.tally(await this.refusedBy(response));
    } catch (err) {
      if (attempts.signal.aborted) return { response: cancelled(job.request.signal.aborted) };
      return this.tally(this.unanswered(err));
    }
  }

  /** Tells the instance's health how the target answered, as soon as the headers are in. */
  private report(status: number): void {
    const { health } = this.deps;
    // Any answer but a transient failure shows the target is up (429s and 4xx included).
    if (status === 500 || status === 502 || status === 503) {
      health.failed(this.target, this.keyId, this.job.request.requestId);
    } else {
      const latencyMs = status < 400 ? this.attempts.timeToFirstByteMs : undefined;
      health.answered(this.target, this.keyId, latencyMs);
    }
  }

  private succeeded(response: UpstreamResponse, latencyMs: number): Ending {
    const { job, attempts, group, keyId } = this;
    this.deps.writes.record({ kind: 'success', group: group.name, keyId, model: job.model, latencyMs });
    const relayed = relay(response, {
      clientSignal: job.request.signal,
      signal: attempts.signal,
      ended: (streamError, tokens) => {
        attempts.tokens = tokens;
        this.reconcile(tokens);
        attempts.deadline.dispose();
        this.deps.requests.forwarded(job, response.status, attempts, streamError);
      },
    });
    return { response: relayed, relayed: true };
  }

  /** Charges the budget the difference between Gemini's count of the prompt and the estimate claimed. */
  private reconcile(tokens: { input: number } | undefined): void {
    const { claim } = this;
    if (claim === undefined || tokens === undefined || claim.tokens === 0) return;
    const delta = tokens.input - claim.tokens;
    if (delta === 0) return;
    const { group, keyId, job } = this;
    this.deps.writes.record({ kind: 'tokens', group: group.name, keyId, model: job.model, claim, delta });
  }

  /** Gemini's error answer, classified; a 500 from a second key for this request is `repeated`. */
  private async refusedBy(response: UpstreamResponse): Promise<FailedCall> {
    const text = await readText(response.body);
    let outcome = classifyUpstreamResponse(response.status, text ?? '');
    if (outcome.kind === 'internal') {
      const elsewhere = [...this.attempts.internalErrors].some((other) => other !== this.keyId);
      this.attempts.internalErrors.add(this.keyId);
      outcome = { kind: 'internal', repeated: elsewhere };
    }
    const { scrubber, now } = this.deps;
    return { outcome, answer: upstreamErrorAnswer(this.job.target.kind, response, text, scrubber, now()) };
  }

  /** No answer from Gemini: the target's problem, unless a generation was merely slow. */
  private unanswered(err: unknown): FailedCall {
    const answer = networkFailure(err);
    if (
      this.job.generation !== undefined &&
      err instanceof UpstreamError &&
      err.kind === 'first_byte_timeout'
    ) {
      // Gemini got the call and is slow with it: that says nothing about the key or the target.
      const resent = this.attempts.slow;
      this.attempts.slow = true;
      return { outcome: { kind: 'slow', resent }, answer };
    }
    this.deps.health.unreachable(this.target, this.job.request.requestId);
    return { outcome: { kind: 'transient' }, answer };
  }

  /** Counts the failure for the request's metrics; a dead key's score drops at once. */
  private tally(failure: FailedCall): FailedCall {
    const { upstreamErrors } = this.attempts;
    const { kind } = failure.outcome;
    if (geminiFailed(failure.outcome)) upstreamErrors.transient++;
    else if (kind === 'quota') upstreamErrors.quota++;
    else if (kind === 'dead_key') {
      this.deps.health.deadKey(this.keyId);
      upstreamErrors.deadKey++;
    }
    return failure;
  }

  private debug(failure: FailedCall, decision: Decision): void {
    this.deps.logger.debug('upstream attempt', {
      requestId: this.job.request.requestId,
      attempt: this.attempts.count,
      group: this.group.name,
      keyId: this.keyId,
      model: this.job.model,
      status: failure.answer.status,
      outcome: failure.outcome.kind,
      action: decision.action,
    });
  }

  /** Acts on a decision other than a retry: the answer ends the request; the rest rotate. */
  private act(
    decision: Exclude<Decision, { action: 'retry_same_key' }>,
    failure: FailedCall,
  ): Ending | typeof ROTATE {
    const { logger, now, writes } = this.deps;
    const { job, attempts, keyId } = this;
    const group = this.group.name;
    const requestId = job.request.requestId;
    switch (decision.action) {
      case 'answer':
        return { response: failure.answer };
      case 'cool_and_rotate': {
        const { cooldown } = decision;
        if (failure.outcome.kind === 'quota') this.learn(failure.outcome);
        if (cooldown !== undefined) {
          attempts.keyCooldowns++;
          // A quota is the project's: every key of the key's budget in this group is held by it alike.
          const keys = failure.outcome.kind === 'quota' ? budgetKeys(this.group, keyId) : [keyId];
          for (const id of keys)
            writes.record({ kind: 'cooldown', group, keyId: id, model: job.model, cooldown });
          if (cooldown.cause === 'unavailable') attempts.parks += keys.length;
          const coolMs = cooldown.until - now();
          logger.warn('key cooling', {
            requestId,
            group,
            keyId,
            model: job.model,
            cause: cooldown.cause,
            coolMs,
          });
        }
        // A quota refusal is not the client's answer: another key (or our own 429) will be.
        attempts.lastFailure = geminiFailed(failure.outcome) ? failure.answer : undefined;
        // A park is not a wait: the request's Retry-After comes from keys that free up.
        if (failure.outcome.kind === 'quota' && cooldown !== undefined && cooldown.cause !== 'unavailable') {
          attempts.quotaRetryAt = Math.min(attempts.quotaRetryAt ?? Infinity, cooldown.until);
        }
        return ROTATE;
      }
      case 'invalidate_and_rotate':
        writes.record({ kind: 'invalid', group, keyId, reason: decision.reason });
        logger.warn('key invalid', { requestId, group, keyId, reason: decision.reason });
        return ROTATE;
    }
  }

  /**
   * Records the limits a 429 reported for this request's model, so that the budget is held to them before
   * Gemini has to refuse again.
   */
  private learn(outcome: Extract<UpstreamOutcome, { kind: 'quota' }>): void {
    const { job, attempts, deps } = this;
    const lessons = learnedLimits(outcome, this.group, this.keyId, job.model, deps.now(), deps.config.policy);
    for (const update of lessons) {
      attempts.limitsLearned++;
      deps.writes.record(update);
      const { metric, limit, budget, group, keyId } = update;
      deps.logger.info('limit learned', {
        requestId: job.request.requestId,
        group,
        keyId,
        budget,
        metric,
        limit,
      });
    }
  }

  /**
   * Readies the same key's next call: the attempts and the target's circuit must allow it, the delay
   * pass, and (with limits) the key's budget be claimed again, as every Gemini call spends it.
   */
  private async again(delayMs: number): Promise<'go' | 'rotate' | 'cancelled'> {
    const { attempts, group, keyId } = this;
    if (!attempts.mayCall(this.target).go) return 'rotate';
    attempts.retries++;
    if (!(await sleep(delayMs, true, { signal: attempts.signal }).catch(() => false))) return 'cancelled';
    const limits = group.limitsFor(this.job.model);
    // Limits configured, or learned (the first claim shows them): each call spends a unit of the budget.
    if (!hasLimits(limits) && this.claim === undefined) return 'go';
    const ref = group.refs.find((r) => r.keyId === keyId)!;
    const acquisition = await attempts.acquire({
      group: group.name,
      keys: [ref],
      model: this.job.model,
      now: this.deps.now(),
      exclude: new Set(),
      limits,
      tokens: this.job.tokens,
      retry: true,
    });
    if (acquisition.kind !== 'key') return 'rotate';
    this.claim = acquisition.claim;
    return 'go';
  }
}
