import { BoundedMap } from '../../core/bounded-map.js';
import { applyUpdate, type KeyRecord, newKeyRecord, toView } from '../../core/key-state/key-record.js';
import type {
  AcquireRequest,
  Acquisition,
  KeyStateStore,
  KeyStateUpdate,
  KeyView,
} from '../../core/key-state/port.js';
import {
  countRequest,
  hasLimits,
  MINUTE_MS,
  minuteIndex,
  quotaVerdict,
  type WindowCounts,
} from '../../core/key-state/quota.js';
import { pickKey, unavailable } from '../../core/key-state/rotation.js';

/**
 * Most budget×model windows held. Past the bound the window counted longest ago is dropped: that budget
 * starts counting that model afresh (Gemini's own 429 still stops it). Only names outside Gemini's model
 * list (while the proxy can't read it) can get there.
 */
export const MAX_BUDGET_WINDOWS = 4096;
/** Most client windows held (clients are configured tokens; the bound only keeps upkeep O(1)). */
export const MAX_CLIENT_WINDOWS = 4096;

/**
 * Key state held in this process: the default for local use, and the fallback the shared store leans
 * on when DynamoDB is unreachable. Its key records follow the core rules ({@link applyUpdate}): cooldowns
 * only extend, invalid keys are not revived by a success, a disabled key stays disabled until the operator
 * lifts it. Everything keyed by model is bounded, with O(1) upkeep per request: nothing is ever scanned.
 */
export class MemoryKeyStateStore implements KeyStateStore {
  private readonly keys = new Map<string, KeyRecord>();
  private readonly cursors = new Map<string, number>();
  private readonly budgets = new BoundedMap<string, WindowCounts>(MAX_BUDGET_WINDOWS);
  private readonly clients = new BoundedMap<string, { minute: number; count: number }>(MAX_CLIENT_WINDOWS);

  async acquire(request: AcquireRequest): Promise<Acquisition> {
    const { group, model, now, limits } = request;
    if (request.client !== undefined) {
      const minute = minuteIndex(now);
      const current = this.clients.get(request.client.clientId);
      const count = current?.minute === minute ? current.count : 0;
      if (count >= request.client.rpm) return { kind: 'client_limited', retryAt: (minute + 1) * MINUTE_MS };
      this.clients.set(request.client.clientId, { minute, count: count + 1 });
    }
    const views = request.keys.map((k) => toView(this.key(group, k.keyId)));
    let skip = request.exclude;
    let quotaRetryAt: number | undefined;
    if (hasLimits(limits)) {
      const blocked = new Set(request.exclude);
      for (const k of request.keys) {
        const verdict = quotaVerdict(limits, this.budgets.get(budgetKey(k.budget, model)), now);
        if (!verdict.ok) {
          blocked.add(k.keyId);
          quotaRetryAt = Math.min(quotaRetryAt ?? Infinity, verdict.retryAt);
        }
      }
      skip = blocked;
    }
    const picked = pickKey(views, this.cursors.get(group) ?? 0, model, now, skip, request.health);
    if ('retryAt' in picked) return unavailable(picked.retryAt, quotaRetryAt);
    if (request.retry !== true) this.cursors.set(group, (picked.index + 1) % views.length);
    if (hasLimits(limits)) {
      const id = budgetKey(request.keys[picked.index]!.budget, model);
      this.budgets.set(id, countRequest(limits, this.budgets.get(id), now));
    }
    return { kind: 'key', keyId: picked.keyId };
  }

  async record(update: KeyStateUpdate): Promise<void> {
    applyUpdate(this.key(update.group, update.keyId), update);
  }

  async describe(group: string, keyIds: readonly string[]): Promise<KeyView[]> {
    return keyIds.map((id) => toView(this.key(group, id), true));
  }

  async flush(): Promise<void> {}

  private key(group: string, keyId: string): KeyRecord {
    const id = `${group}\u0000${keyId}`;
    let key = this.keys.get(id);
    if (key === undefined) {
      key = newKeyRecord(keyId);
      this.keys.set(id, key);
    }
    return key;
  }
}

function budgetKey(budget: string, model: string): string {
  return `${budget}\u0000${model}`;
}
