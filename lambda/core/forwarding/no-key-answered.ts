import type { ProxyConfig } from '../config/schema.js';
import type { BudgetMetric } from '../key-state/port.js';
import { openAiError } from '../openai-errors.js';
import {
  cancelled,
  circuitOpen,
  keysExhausted,
  modelUnavailable,
  overTokenBudget,
  stateUnavailable,
} from '../refusals.js';
import type { Attempts, Ending } from './attempts.js';

/** Why no key was tried in a pass over the groups, gathered by the loop. */
export interface Blocked {
  /** Soonest end of a cooldown or quota window seen in the last pass. */
  soonest: number | undefined;
  /** A group's keys were held back by the configured quota (not only by Gemini's cooldowns). */
  quota: boolean;
  /** Soonest moment a circuit that refused this request lets calls through again. */
  circuitRetryAt: number | undefined;
  /** A group's budget claim that shared state could not take: another group may still serve. */
  stateRetryAt: number | undefined;
  /** Time already spent waiting for a cooling key. */
  waitedMs: number;
  /** Some key was parked for the model (Gemini reported `limit: 0` for its project). */
  parked: boolean;
  /** Keys were passed over because the request exceeds their whole token window: the largest such tpm. */
  overTpm: number | undefined;
  /** The budget limit that held back the soonest key, when budgets did. */
  metric: BudgetMetric | undefined;
}

/** Nothing held back yet: where a request's passes over the groups start. */
export function nothingBlocked(): Blocked {
  return {
    soonest: undefined,
    quota: false,
    circuitRetryAt: undefined,
    stateRetryAt: undefined,
    waitedMs: 0,
    parked: false,
    overTpm: undefined,
    metric: undefined,
  };
}

/**
 * After a pass over the groups in which no key answered: the request's final answer, or how long to wait
 * for the soonest cooling key before another pass (only within `max_wait_ms`). Pure.
 */
export function whenNoKeyAnswered(
  attempts: Pick<Attempts, 'signal' | 'lastFailure' | 'spent' | 'quotaRetryAt' | 'parks'>,
  clientGone: boolean,
  blocked: Blocked,
  now: number,
  policy: ProxyConfig['policy'],
  request: { readonly model: string; readonly tokens: number },
): Ending | { readonly waitMs: number } {
  if (attempts.signal.aborted) return { response: cancelled(clientGone) };
  if (attempts.lastFailure !== undefined) return { response: attempts.lastFailure };
  const { quotaRetryAt } = attempts;
  if (attempts.spent) {
    if (quotaRetryAt !== undefined) {
      return { response: keysExhausted(quotaRetryAt - now), refusal: 'keys_exhausted' };
    }
    // Attempts spent (on parks, say) says nothing of the keys not tried: they may serve the model.
    return { response: openAiError(503, 'No key could serve this request.', 'server_error') };
  }
  // A key this request cooled is cooling even if the store has not taken the write in yet; once that
  // cooldown has ended it says nothing (a past instant would make the wait 1 ms, pass after pass).
  const own = quotaRetryAt !== undefined && quotaRetryAt > now ? quotaRetryAt : undefined;
  const soonest = own === undefined ? blocked.soonest : Math.min(blocked.soonest ?? Infinity, own);
  if (soonest === undefined) {
    // No key will free up: the request is too large for every key left, or the model is not in their tier.
    if (blocked.overTpm !== undefined) {
      return { response: overTokenBudget(request.tokens, blocked.overTpm), refusal: 'over_token_budget' };
    }
    if (blocked.parked || attempts.parks > 0) {
      return { response: modelUnavailable(request.model), refusal: 'model_unavailable' };
    }
    if (blocked.stateRetryAt !== undefined) {
      return { response: stateUnavailable(blocked.stateRetryAt - now), refusal: 'state_unavailable' };
    }
    if (blocked.circuitRetryAt !== undefined) {
      return { response: circuitOpen(blocked.circuitRetryAt - now), refusal: 'circuit_open' };
    }
    return {
      response: openAiError(
        503,
        'No usable Gemini API key is configured for this model.',
        'server_error',
        'no_usable_keys',
      ),
      refusal: 'no_usable_keys',
    };
  }
  const wait = Math.max(1, soonest - now);
  if (blocked.waitedMs + wait <= policy.max_wait_ms) return { waitMs: wait };
  return { response: keysExhausted(wait, blocked.quota), refusal: 'keys_exhausted' };
}
