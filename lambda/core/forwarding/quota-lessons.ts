/** What a Gemini 429 teaches beyond the one key's cooldown: who shares the quota, and its limits. */
import type { ProxyConfig } from '../config/schema.js';
import type { UpstreamOutcome } from '../gemini-errors.js';
import type { KeyStateUpdate } from '../key-state/port.js';
import type { KeyGroup } from './groups.js';

/** The group's keys that draw on a key's quota budget: its project's keys, else the key alone. */
export function budgetKeys(group: KeyGroup, keyId: string): string[] {
  const budget = group.refs.find((r) => r.keyId === keyId)?.budget;
  return group.refs.filter((r) => r.budget === budget).map((r) => r.keyId);
}

/**
 * The limits a 429 reported for the request's model, as updates for the key's budget: each in force for
 * `policy.learned_limit_ms` (0: nothing is learned). A violation for another model, of an unknown metric,
 * or without a limit teaches nothing; `limit: 0` is a park (the cooldown), not a limit.
 */
export function learnedLimits(
  outcome: Extract<UpstreamOutcome, { kind: 'quota' }>,
  group: KeyGroup,
  keyId: string,
  model: string,
  now: number,
  policy: ProxyConfig['policy'],
): Array<Extract<KeyStateUpdate, { kind: 'learned' }>> {
  if (policy.learned_limit_ms === 0) return [];
  const budget = group.refs.find((r) => r.keyId === keyId)?.budget;
  if (budget === undefined) return [];
  const until = now + policy.learned_limit_ms;
  const lessons: Array<Extract<KeyStateUpdate, { kind: 'learned' }>> = [];
  for (const v of outcome.violations) {
    if (v.metric === 'unknown' || v.limit === undefined || v.limit <= 0) continue;
    if (v.model !== undefined && v.model !== model) continue;
    if (lessons.some((l) => l.metric === v.metric)) continue;
    lessons.push({
      kind: 'learned',
      group: group.name,
      keyId,
      budget,
      model,
      metric: v.metric,
      limit: v.limit,
      until,
    });
  }
  return lessons;
}
