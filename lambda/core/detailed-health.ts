import type { CircuitView } from './circuit-breaker.js';
import type { KeyGroup } from './forwarding/groups.js';
import type { InstanceHealth } from './instance-health.js';
import type { KeyStateStore, KeyView, LearnedLimitView } from './key-state/port.js';
import { describeProxy } from './upstream-proxy.js';

/** Keys of a group by state: `cooling` is an active key with a cooldown in force for some model. */
export interface KeyCounts {
  active: number;
  cooling: number;
  invalid: number;
  disabled: number;
}

/** `/health/detailed`: the pool as this instance sees it. */
export interface DetailedHealth {
  readonly status: 'ok';
  readonly groups: ReadonlyArray<{
    readonly name: string;
    readonly proxy: string | null;
    readonly total: number;
    readonly counts: KeyCounts;
    readonly keys: readonly unknown[];
  }>;
  readonly circuits: readonly CircuitView[];
}

/**
 * The body of `/health/detailed`: each group's keys (status, score, last check, what they are cooling
 * for) and this instance's circuits. Key ids only, never a key.
 */
export async function detailedHealth(
  groups: readonly KeyGroup[],
  store: KeyStateStore,
  health: InstanceHealth,
  now: number,
): Promise<DetailedHealth> {
  const described = [];
  for (const group of groups) {
    const views = await store.describe(group.name, group.keyIds);
    const counts: KeyCounts = { active: 0, cooling: 0, invalid: 0, disabled: 0 };
    const keys = views.map((v) => {
      const cooling = coolingModels(v, now);
      if (v.status !== 'active') counts[v.status]++;
      else if (Object.keys(cooling).length > 0) counts.cooling++;
      else counts.active++;
      return {
        id: v.keyId,
        status: v.status,
        reason: v.reason ?? null,
        score: health.score(v),
        lastCheck: v.lastCheck === undefined ? null : { ...v.lastCheck, at: isoTime(v.lastCheck.at) },
        cooling,
        // Models Gemini reported not in the key's tier (limit 0): parked, not merely cooling.
        parked: Object.keys(cooling).filter((m) => cooling[m]?.cause === 'unavailable'),
      };
    });
    const budgets = [...new Set(group.refs.map((r) => r.budget))];
    const learned = (await store.learned?.(group.name, budgets, now)) ?? [];
    // The proxy as scheme://host:port: never its credentials.
    const proxy = group.proxy === undefined ? null : describeProxy(group.proxy);
    described.push({
      name: group.name,
      proxy,
      total: views.length,
      counts,
      keys,
      learnedLimits: learned.map(learnedView),
    });
  }
  return { status: 'ok', groups: described, circuits: health.circuits() };
}

/** A budget×model's learned limits as `{ budget, model, rpm?, tpm?, rpd?, until }` (`until`: the last to lapse). */
function learnedView(l: LearnedLimitView): Record<string, unknown> {
  const out: Record<string, unknown> = { budget: l.budget, model: l.model };
  let until = 0;
  for (const [metric, v] of Object.entries(l.limits)) {
    out[metric] = v.limit;
    until = Math.max(until, v.until);
  }
  out.until = isoTime(until);
  return out;
}

function coolingModels(view: KeyView, now: number): Record<string, { until: string | null; cause: string }> {
  // No prototype: a model named `__proto__` is a field like any other.
  const out: Record<string, { until: string | null; cause: string }> = Object.create(null);
  for (const [model, c] of view.cooldowns) {
    if (c.until > now) out[model === '' ? '*' : model] = { until: isoTime(c.until), cause: c.cause };
  }
  return out;
}

/**
 * An instant from stored state as ISO 8601, or null when it is no date at all (NaN, or beyond what a
 * Date holds: state another instance or an older version wrote must not make the endpoint fail).
 */
function isoTime(epochMs: number): string | null {
  const date = new Date(epochMs);
  return Number.isNaN(date.getTime()) ? null : date.toISOString();
}
