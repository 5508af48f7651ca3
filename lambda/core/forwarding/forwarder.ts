import { setTimeout as sleep } from 'node:timers/promises';
import { stateWaitAllowanceMs } from '../config/derived.js';
import { RequestDeadline } from '../deadline.js';
import type { ProxyResponse } from '../http.js';
import { cancelled, clientLimited, stateUnavailable } from '../refusals.js';
import { ATTEMPTS_HEADER, Attempts, type Ending, type ForwarderDeps, type ForwardJob } from './attempts.js';
import { type FallbackModel, MODEL_HEADER, type ModelTurn, serveWithFallbacks } from './fallbacks.js';
import { targetOf } from './groups.js';
import { KeyAttempt, ROTATE } from './key-attempt.js';
import { type Blocked, nothingBlocked, whenNoKeyAnswered } from './no-key-answered.js';

/**
 * The attempt loop: groups in order, keys in rotation, each key's calls to Gemini ({@link KeyAttempt}),
 * waits for a cooling key where allowed, and the proxy's own refusal when no key answers.
 */
export class Forwarder {
  constructor(private readonly deps: ForwarderDeps) {}

  /**
   * Serves one request, then its `fallbacks` in order while no key can serve the model before
   * ({@link serveWithFallbacks}); every answer leaves here, with its log line, the attempts header and
   * the model that answered.
   */
  async forward(job: ForwardJob, fallbacks: readonly FallbackModel[] = []): Promise<ProxyResponse> {
    const { config, now } = this.deps;
    const deadlineAt = job.request.deadlineAt;
    const timeoutMs = Math.min(
      config.upstream.request_timeout_ms,
      deadlineAt === undefined ? Number.POSITIVE_INFINITY : Math.max(0, deadlineAt - now()),
    );
    const deadline = new RequestDeadline(job.request.signal, timeoutMs);
    const first = new Attempts(deadline, this.deps, config.policy, stateWaitAllowanceMs(config.state));
    let turn: ModelTurn;
    try {
      turn = await serveWithFallbacks(job, first, fallbacks, (j, attempts) => this.serve(j, attempts));
    } catch (err) {
      deadline.dispose();
      throw err;
    }
    const { ending, attempts, job: answered } = turn;
    // A relayed answer is logged, and its deadline released, when its stream ends.
    if (!ending.relayed) {
      deadline.dispose();
      attempts.refusal = ending.refusal;
      this.deps.requests.forwarded(answered, ending.response.status, attempts);
    }
    const { headers } = ending.response;
    headers[ATTEMPTS_HEADER] = String(attempts.count + (answered.earlier?.count ?? 0));
    if (answered.model !== '') headers[MODEL_HEADER] = answered.model;
    return ending.response;
  }

  /** Passes over the groups until a key answers or no key will, waiting for a cooling key where allowed. */
  private async serve(job: ForwardJob, attempts: Attempts): Promise<Ending> {
    const blocked = nothingBlocked();
    for (;;) {
      const ending = await this.tryGroups(job, attempts, blocked);
      if (ending !== undefined) return ending;
      const clientGone = job.request.signal.aborted;
      const next = whenNoKeyAnswered(
        attempts,
        clientGone,
        blocked,
        this.deps.now(),
        this.deps.config.policy,
        job,
      );
      if (!('waitMs' in next)) {
        if (next.refusal === 'keys_exhausted' && blocked.quota) attempts.budgetRefusal = blocked.metric;
        return next;
      }
      blocked.waitedMs += next.waitMs;
      if (!(await sleep(next.waitMs, true, { signal: attempts.signal }).catch(() => false))) {
        return { response: cancelled(job.request.signal.aborted) };
      }
    }
  }

  /**
   * One pass: each group's keys in turn until one answers (its ending), or until the group has none to
   * give, its circuit is open, or the attempts are spent; what held keys back goes into `blocked`.
   */
  private async tryGroups(
    job: ForwardJob,
    attempts: Attempts,
    blocked: Blocked,
  ): Promise<Ending | undefined> {
    const { config, now, health } = this.deps;
    const exclude = new Set<string>();
    blocked.soonest = undefined;
    blocked.parked = false;
    blocked.overTpm = undefined;
    for (const group of job.groups) {
      const target = targetOf(job.target, group, config.upstream);
      for (;;) {
        const gate = attempts.mayCall(target);
        if (!gate.go) {
          // Gemini at this target keeps failing: don't spend a key on it; another group may serve.
          if (gate.circuitRetryAt !== undefined) {
            blocked.circuitRetryAt = Math.min(blocked.circuitRetryAt ?? Infinity, gate.circuitRetryAt);
          }
          break;
        }
        // The client's own limit is counted once per request, with its first acquisition.
        const client = attempts.clientCounted ? undefined : job.client;
        const acquisition = await attempts.acquire({
          group: group.name,
          keys: group.refs,
          model: job.model,
          now: now(),
          exclude,
          limits: group.limitsFor(job.model),
          tokens: job.tokens,
          client,
          health: health.selection,
        });
        attempts.clientCounted = true;
        if (acquisition.kind === 'client_limited') {
          return { response: clientLimited(acquisition.retryAt - now()), refusal: 'client_rate_limited' };
        }
        if (acquisition.kind === 'state_unavailable') {
          // The client's own limit could not be counted: refuse. Only a group's budget: try the next group.
          if (client !== undefined) {
            return { response: stateUnavailable(acquisition.retryAt - now()), refusal: 'state_unavailable' };
          }
          blocked.stateRetryAt = Math.min(blocked.stateRetryAt ?? Infinity, acquisition.retryAt);
          break;
        }
        if (acquisition.kind === 'unavailable') {
          if (acquisition.retryAt !== undefined) {
            if (acquisition.retryAt < (blocked.soonest ?? Infinity)) blocked.metric = acquisition.metric;
            blocked.soonest = Math.min(blocked.soonest ?? Infinity, acquisition.retryAt);
            if (acquisition.cause === 'quota') blocked.quota = true;
          }
          if (acquisition.parked === true) blocked.parked = true;
          if (acquisition.overTpm !== undefined) {
            blocked.overTpm = Math.max(blocked.overTpm ?? 0, acquisition.overTpm);
          }
          break;
        }
        const { keyId } = acquisition;
        exclude.add(keyId);
        attempts.group = group.name;
        attempts.keyId = keyId;
        const attempt = new KeyAttempt(this.deps, job, attempts, group, target, keyId, acquisition.claim);
        const result = await attempt.run();
        if (result !== ROTATE) return result;
      }
    }
    return undefined;
  }
}
