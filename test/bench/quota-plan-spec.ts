/**
 * The realistic quota plan of `npm run bench:quota` (issue 11): Gemini's free-tier quotas scaled in time,
 * what they allow, and what a first-come-first-served oracle serves of an arrival sequence.
 */
import type { ModelQuota } from '../support/fake-gemini.js';

export const FLASH = 'gemini-2.5-flash';
export const PRO = 'gemini-2.5-pro';
/** The fake's "minute", and the proxies' rpm/tpm window (`limits.rpm_window_ms`). */
export const WINDOW_MS = 2000;
export const MIN_TOKENS = 1_000;
export const MAX_TOKENS = 200_000;
/** Gemini counts this share of the proxy's estimate (chars / 4): the estimate errs ~5 % on the safe side. */
export const TOKEN_FACTOR = 0.95;
export const FLASH_QUOTA = { rpm: 10, tpm: 250_000, rpd: 250 } as const;
export const PRO_QUOTA = { rpm: 5, tpm: 250_000, rpd: 100 } as const;
/** Not in the project's tier: Gemini's 429 lists every metric with `limit: 0`. */
const NOT_IN_TIER = { rpm: 0, tpm: 0, rpd: 0 } as const;
/** Keys per project (3 projects of 2–3 keys); pro is in the tier of the last project only. */
export const KEYS_PER_PROJECT = [3, 2, 3];
export const PRO_PROJECT = KEYS_PER_PROJECT.length - 1;
/** How long a request may wait for a budget window to reopen (`policy.max_wait_ms`): two windows. */
export const MAX_WAIT_MS = 2 * WINDOW_MS;

/** The quota of `model` in project `j`, as the fake's plan holds it. */
export function quotaOf(j: number, model: string): ModelQuota {
  if (model === FLASH) return FLASH_QUOTA;
  return j === PRO_PROJECT ? PRO_QUOTA : NOT_IN_TIER;
}

/** Mean of a log-uniform distribution on [a, b]. */
export const logUniformMean = (a: number, b: number) => (b - a) / Math.log(b / a);

/** Gemini's count of a prompt the proxy estimates at `tokens`. */
export const geminiTokens = (tokens: number) => Math.ceil(tokens * TOKEN_FACTOR);

/**
 * What the plan allows of `model` in `windows` windows when its prompts average `meanTokens` (Gemini's
 * count):
 *
 *     capacity(model) = Σ over projects p with the model in their tier of
 *                       min(rpm_p × windows, tpm_p / meanTokens × windows, rpd_p)
 *
 * Tokens are taken as divisible (no packing loss), so no router can beat it on average.
 */
export function planCapacity(model: string, meanTokens: number, windows: number): number {
  let total = 0;
  for (let j = 0; j < KEYS_PER_PROJECT.length; j++) {
    const q = quotaOf(j, model);
    if (!q.rpm || !q.tpm) continue;
    const perWindow = Math.min(q.rpm, q.tpm / Math.max(1, meanTokens));
    total += Math.min(perWindow * windows, q.rpd ?? Number.POSITIVE_INFINITY);
  }
  return total;
}

/** One request of the offer: when it is sent (ms after the start), its model and estimated tokens. */
export interface Arrival {
  readonly at: number;
  readonly model: string;
  readonly tokens: number;
}

/**
 * How many of `arrivals` a first-come-first-served oracle serves: a router that knows every project's
 * counts exactly and puts each request, in arrival order, in the first window (from the one it arrives
 * in, up to `MAX_WAIT_MS` later) and the first project where its request, tokens and day count fit. A
 * reference for the proxy's success %: what the plan allows of this sequence without reordering (a
 * router that lets small prompts pass large ones can serve more, none can serve much more).
 */
export function fifoOracleServed(arrivals: readonly Arrival[]): number {
  const used = new Map<string, { requests: number; tokens: number }>();
  const day = new Map<string, number>();
  let served = 0;
  for (const a of arrivals) {
    const tokens = geminiTokens(a.tokens);
    const first = Math.floor(a.at / WINDOW_MS);
    const last = Math.floor((a.at + MAX_WAIT_MS) / WINDOW_MS);
    placing: for (let w = first; w <= last; w++) {
      for (let j = 0; j < KEYS_PER_PROJECT.length; j++) {
        const q = quotaOf(j, a.model);
        const id = `${j} ${a.model}`;
        const u = used.get(`${id} ${w}`) ?? { requests: 0, tokens: 0 };
        const d = day.get(id) ?? 0;
        if (u.requests + 1 > (q.rpm ?? Infinity) || u.tokens + tokens > (q.tpm ?? Infinity)) continue;
        if (d + 1 > (q.rpd ?? Infinity)) continue;
        used.set(`${id} ${w}`, { requests: u.requests + 1, tokens: u.tokens + tokens });
        day.set(id, d + 1);
        served++;
        break placing;
      }
    }
  }
  return served;
}
