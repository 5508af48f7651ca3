/** Rotation: which key of a group serves next, and what to answer when none can. */
import { isCooling } from './cooldown.js';
import type { Acquisition, BudgetMetric, HealthPreference, KeyView } from './port.js';

/** True when the key may serve `model` at `now`: active, enabled and not cooling for the model. */
export function isUsable(key: KeyView, model: string, now: number): boolean {
  if (key.status !== 'active') return false;
  const cooldown = key.cooldowns.get(model);
  return cooldown === undefined || !isCooling(cooldown, now);
}

/**
 * Round-robin from `start`: the first usable key not excluded, or the soonest time one frees up (`parked`:
 * some key is parked for the model because Gemini reported it not in the tier; parks don't count as
 * freeing up, they last until the quota day ends or the operator lifts them). With
 * `health`, a key scoring below `floor` × the best score among the usable keys is passed over as long as
 * a better one is usable: scores rank keys against each other, so a failure that hit every key alike
 * (all scores low) leaves the rotation even. Returns the chosen index so a store can continue after it.
 */
export function pickKey(
  keys: readonly KeyView[],
  start: number,
  model: string,
  now: number,
  exclude: ReadonlySet<string>,
  health?: HealthPreference,
): { keyId: string; index: number } | { retryAt: number | undefined; parked?: true } {
  const n = keys.length;
  let retryAt: number | undefined;
  let parked = false;
  const usable: Array<{ keyId: string; index: number; score: number }> = [];
  let best = 0;
  for (let i = 0; i < n; i++) {
    const index = (((start + i) % n) + n) % n;
    const key = keys[index]!;
    if (key.status !== 'active') continue;
    const cooldown = key.cooldowns.get(model);
    if (cooldown !== undefined && isCooling(cooldown, now)) {
      if (cooldown.cause === 'unavailable') parked = true;
      else retryAt = retryAt === undefined ? cooldown.until : Math.min(retryAt, cooldown.until);
      continue;
    }
    if (exclude.has(key.keyId)) continue;
    if (health === undefined || health.floor === 0) return { keyId: key.keyId, index };
    const score = health.score(key);
    usable.push({ keyId: key.keyId, index, score });
    best = Math.max(best, score);
  }
  const chosen = usable.find((k) => k.score >= health!.floor * best);
  if (chosen !== undefined) return { keyId: chosen.keyId, index: chosen.index };
  return parked ? { retryAt, parked } : { retryAt };
}

/** What else held keys back when none could serve: parks, the budget limit that did, oversize requests. */
export interface HeldBack {
  readonly parked?: boolean | undefined;
  readonly metric?: BudgetMetric | undefined;
  readonly overTpm?: number | undefined;
}

/**
 * The answer when no key can serve: retry at the soonest of a cooldown ending and a quota window opening,
 * named by which of them it is (`none` when neither will: every key is invalid, disabled, parked, excluded
 * or too small for the request).
 */
export function unavailable(
  coolingUntil: number | undefined,
  quotaUntil: number | undefined,
  held: HeldBack = {},
): Acquisition {
  const next = soonest({ at: coolingUntil, cause: 'cooling' }, { at: quotaUntil, cause: 'quota' });
  return {
    kind: 'unavailable',
    retryAt: next.at,
    cause: next.cause,
    parked: held.parked === true ? true : undefined,
    metric: next.cause === 'quota' ? held.metric : undefined,
    overTpm: held.overTpm,
  };
}

/** The soonest of two optional instants, and which of them it was (the first on a tie). */
function soonest<T extends string>(
  a: { at: number | undefined; cause: T },
  b: { at: number | undefined; cause: T },
): { at: number | undefined; cause: T | 'none' } {
  if (a.at === undefined) return b.at === undefined ? { at: undefined, cause: 'none' } : b;
  if (b.at === undefined) return a;
  return a.at <= b.at ? a : b;
}
