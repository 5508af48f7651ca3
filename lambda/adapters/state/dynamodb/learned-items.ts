/**
 * Limits learned from Gemini's 429s, kept in the group's partition so that the one Query that reads a
 * group's key state (`GroupStateCache`) brings them along: no extra read on the hot path.
 *
 * | pk | sk | holds |
 * |---|---|---|
 * | `grp#<group>` | `learn#<budget>#<model>` | `budget`, `model`, and per metric (`rpm`, `tpm`, `rpd`) `{ limit, until }`; ttl |
 *
 * A report replaces what was learned for its metric (the latest word of Gemini wins: a tier change, a
 * new limit); each stays in force until its `until`, and TTL tidies the item a day after.
 */
import type { BudgetMetric, KeyStateUpdate, LearnedLimits } from '../../../core/key-state/port.js';
import { budgetModelKey } from '../../../core/key-state/quota-hold.js';
import { groupPk } from './key-items.js';
import { type Item, num, str, ttlAfter, type UpdateInput } from './table.js';

const METRICS: readonly BudgetMetric[] = ['rpm', 'tpm', 'rpd'];

/** The write of one learned limit (unconditional: the latest report wins). */
export function learnedWrite(update: Extract<KeyStateUpdate, { kind: 'learned' }>): UpdateInput {
  return {
    Key: { pk: groupPk(update.group), sk: `learn#${update.budget}#${update.model}` },
    UpdateExpression: 'SET #b = :b, #model = :model, #metric = :v, #ttl = :ttl',
    ExpressionAttributeNames: { '#b': 'budget', '#model': 'model', '#metric': update.metric, '#ttl': 'ttl' },
    ExpressionAttributeValues: {
      ':b': update.budget,
      ':model': update.model,
      ':v': { limit: update.limit, until: update.until },
      ':ttl': ttlAfter(update.until),
    },
    ReturnValues: 'NONE',
  };
}

/** A learned-limits item read back: its budget×model and limits, or undefined for anything else. */
export function readLearnedItem(item: Item): { id: string; limits: LearnedLimits } | undefined {
  if (!(str(item.sk) ?? '').startsWith('learn#')) return undefined;
  const budget = str(item.budget);
  const model = str(item.model);
  if (budget === undefined || model === undefined) return undefined;
  const limits: { -readonly [K in BudgetMetric]?: { limit: number; until: number } } = {};
  for (const metric of METRICS) {
    const v = item[metric] as { limit?: unknown; until?: unknown } | undefined;
    const limit = num(v?.limit);
    const until = num(v?.until);
    if (limit !== undefined && until !== undefined && limit > 0) limits[metric] = { limit, until };
  }
  return { id: budgetModelKey(budget, model), limits };
}

/** Both reports of a budget×model merged: for each metric, the one reported last (the later `until`). */
export function mergeLearned(a: LearnedLimits | undefined, b: LearnedLimits): LearnedLimits {
  if (a === undefined) return b;
  const out: { -readonly [K in BudgetMetric]?: { limit: number; until: number } } = { ...a };
  for (const metric of METRICS) {
    const mine = b[metric];
    if (mine !== undefined && (out[metric] === undefined || out[metric].until < mine.until))
      out[metric] = mine;
  }
  return out;
}
