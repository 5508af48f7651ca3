/** What held a request's keys back at their budgets, gathered while a store picks a key. */
import type { Acquisition, BudgetMetric, LearnedLimits, LearnedLimitView, QuotaLimits } from './port.js';
import { overTokenBudget, type QuotaVerdict } from './quota.js';
import { unavailable } from './rotation.js';

/**
 * Collects, over a group's keys, the soonest moment a full budget opens again (and which limit held it),
 * and the largest token window too small for the request; then answers for the store when no key can serve.
 */
export class QuotaHold {
  /** Soonest moment a budget that was full takes a request again. */
  retryAt: number | undefined;
  /** The limit that held back the budget freeing soonest. */
  metric: BudgetMetric | undefined;
  /** The largest tpm of keys whose whole window is smaller than the request. */
  overTpm: number | undefined;

  /** True (and noted) when the request is larger than the key's whole token window. */
  tooLarge(limits: QuotaLimits, tokens: number): boolean {
    if (!overTokenBudget(limits, tokens)) return false;
    this.overTpm = Math.max(this.overTpm ?? 0, limits.tpm!);
    return true;
  }

  /** True when the verdict lets the request in; otherwise notes when, and why, it would. */
  fits(verdict: QuotaVerdict): boolean {
    if (verdict.ok) return true;
    this.held(verdict.retryAt, verdict.metric);
    return false;
  }

  /** Notes a budget full until `retryAt` because of `metric`. */
  held(retryAt: number, metric: BudgetMetric | undefined): void {
    if (this.retryAt === undefined || retryAt < this.retryAt) {
      this.retryAt = retryAt;
      this.metric = metric;
    }
  }

  /** The store's answer when selection found no key (`picked`: what the cooldowns said). */
  unavailable(picked: { retryAt: number | undefined; parked?: boolean }): Acquisition {
    return unavailable(picked.retryAt, this.retryAt, {
      parked: picked.parked,
      metric: this.metric,
      overTpm: this.overTpm,
    });
  }
}

/** The learned limits still in force at `now` (undefined when none is). */
export function inForce(limits: LearnedLimits | undefined, now: number): LearnedLimits | undefined {
  if (limits === undefined) return undefined;
  const out: { -readonly [K in keyof LearnedLimits]: LearnedLimits[K] } = {};
  for (const metric of ['rpm', 'tpm', 'rpd'] as const) {
    const l = limits[metric];
    if (l !== undefined && l.until > now) out[metric] = l;
  }
  return Object.keys(out).length > 0 ? out : undefined;
}

/** A budget×model as the stores key their maps (a model name never holds a NUL). */
export const budgetModelKey = (budget: string, model: string) => `${budget}\u0000${model}`;

/** The learned limits still in force of the given budgets, from a map keyed by {@link budgetModelKey}. */
export function learnedViews(
  learned: Iterable<[string, LearnedLimits]>,
  budgets: readonly string[],
  now: number,
): LearnedLimitView[] {
  const wanted = new Set(budgets);
  const out: LearnedLimitView[] = [];
  for (const [id, limits] of learned) {
    const cut = id.lastIndexOf('\u0000');
    const budget = id.slice(0, cut);
    const current = inForce(limits, now);
    if (wanted.has(budget) && current !== undefined)
      out.push({ budget, model: id.slice(cut + 1), limits: current });
  }
  return out;
}
