/**
 * Opt-in model fallbacks (`fallbacks:` in the configuration): when no key of any group can serve the
 * client's model now, the same request is served by the next model of that model's chain.
 */
import type { ProxyConfig } from '../config/schema.js';
import { headerValue } from '../headers.js';
import type { Headers } from '../http.js';
import type { RequestMetrics } from '../metrics.js';
import { normalizeModel } from '../routes.js';
import type { Attempts, Ending, ForwardJob } from './attempts.js';
import type { KeyGroup } from './groups.js';
import { addCalls, type CallCounts } from './request-log.js';
import { retarget } from './retarget.js';

/** Response header naming the model whose answer (or refusal) the client got. */
export const MODEL_HEADER = 'x-gemini-model';
/** Request header that turns fallbacks off for one request: `off`, `none`, `false` or `0`. */
export const FALLBACK_HEADER = 'x-gemini-fallback';
const OFF = new Set(['off', 'none', 'false', '0']);

/**
 * The proxy's refusals that mean no key of any group can serve the model now: cooling or out of budget,
 * none usable, parked as unavailable, or the prompt is over every key's token window. Nothing else (a
 * client's error, Gemini's own answer, an open circuit, shared state down, the client's own limit, a
 * cancellation) moves a request to another model.
 */
const NO_KEY_CAN_SERVE: ReadonlySet<RequestMetrics['refusal']> = new Set([
  'keys_exhausted',
  'no_usable_keys',
  'model_unavailable',
  'over_token_budget',
]);

/** A model to try after the client's, with the groups that serve it. */
export interface FallbackModel {
  readonly model: string;
  readonly groups: readonly KeyGroup[];
}

/** One model's turn: the job as sent for that model, its bookkeeping, and how it ended. */
export interface ModelTurn {
  readonly job: ForwardJob;
  readonly attempts: Attempts;
  readonly ending: Ending;
}

/** True when the request's `x-gemini-fallback` header turns fallbacks off for it. */
export function fallbacksOff(headers: Headers): boolean {
  const value = headerValue(headers, FALLBACK_HEADER);
  return value !== undefined && OFF.has(value.trim().toLowerCase());
}

/** The configured chains by model, names as state keys them (no `models/` prefix). */
export function fallbackChains(fallbacks: ProxyConfig['fallbacks']): ReadonlyMap<string, readonly string[]> {
  return new Map(
    Object.entries(fallbacks).map(([model, chain]) => [normalizeModel(model), chain.map(normalizeModel)]),
  );
}

/** `Retry-After` in seconds; a refusal without one says nothing will serve soon. */
function retryAfter(turn: ModelTurn): number {
  const seconds = Number(turn.ending.response.headers['retry-after']);
  return Number.isFinite(seconds) ? seconds : Number.POSITIVE_INFINITY;
}

const NO_CALLS: CallCounts = {
  count: 0,
  retries: 0,
  upstreamErrors: { transient: 0, quota: 0, deadKey: 0 },
  keyCooldowns: 0,
};

/** What the turns' Gemini calls came to, together. */
const sum = (turns: readonly ModelTurn[]) => turns.map((t) => t.attempts).reduce(addCalls, NO_CALLS);

/**
 * Serves `job`, then each model of `fallbacks` in order while the last turn ended in a refusal that says
 * no key can serve (the list is the whole chain: a fallback's own fallbacks are not followed). Each model
 * gets its own attempts (`max_attempts` each) within the request's deadline; the client's own limit is
 * counted once. Returns the turn whose answer the client gets, its job carrying what earlier turns
 * called (`earlier`) for the one log line and the attempts header.
 *
 * When every model is refused, the refusal with the soonest `Retry-After` is answered (the earliest model
 * of the chain on a tie, so the client's own model first): a retry goes through the same chain, so that is
 * when the request can next be served, while a refusal without one (`no_usable_keys`) would tell the client
 * to give up on a request another model of the chain serves in seconds.
 */
export async function serveWithFallbacks(
  job: ForwardJob,
  attempts: Attempts,
  fallbacks: readonly FallbackModel[],
  serve: (job: ForwardJob, attempts: Attempts) => Promise<Ending>,
): Promise<ModelTurn> {
  const turns: ModelTurn[] = [{ job, attempts, ending: await serve(job, attempts) }];
  for (const next of fallbacks) {
    const last = turns.at(-1)!;
    if (!NO_KEY_CAN_SERVE.has(last.ending.refusal) || last.attempts.signal.aborted) break;
    const retargeted = retarget(job, next.model);
    if (retargeted === undefined) break;
    const nextJob: ForwardJob = {
      ...retargeted,
      model: next.model,
      groups: next.groups,
      fallbackFrom: job.model,
      earlier: sum(turns),
    };
    const nextAttempts = last.attempts.forFallback();
    turns.push({ job: nextJob, attempts: nextAttempts, ending: await serve(nextJob, nextAttempts) });
  }
  const last = turns.at(-1)!;
  if (turns.length === 1 || !NO_KEY_CAN_SERVE.has(last.ending.refusal)) return last;
  let chosen = turns[0]!;
  for (const turn of turns) if (retryAfter(turn) < retryAfter(chosen)) chosen = turn;
  return { ...chosen, job: { ...chosen.job, earlier: sum(turns.filter((t) => t !== chosen)) } };
}
