import { BoundedMap } from '../../core/bounded-map.js';
import { applyUpdate, type KeyRecord, newKeyRecord, toView } from '../../core/key-state/key-record.js';
import type {
  AcquireRequest,
  Acquisition,
  KeyRef,
  KeyStateStore,
  KeyStateUpdate,
  KeyView,
  LearnedLimits,
  LearnedLimitView,
} from '../../core/key-state/port.js';
import {
  chargeTokens,
  countRequest,
  effectiveLimits,
  hasLimits,
  MINUTE_MS,
  minuteIndex,
  quotaVerdict,
  rpmWindow,
  type WindowCounts,
} from '../../core/key-state/quota.js';
import { budgetModelKey, learnedViews, QuotaHold } from '../../core/key-state/quota-hold.js';
import { pickKey } from '../../core/key-state/rotation.js';

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
  /** Limits Gemini reported, by budget×model (bounded like the windows). */
  private readonly learnedLimits = new BoundedMap<string, LearnedLimits>(MAX_BUDGET_WINDOWS);

  async acquire(request: AcquireRequest): Promise<Acquisition> {
    const { group, model, now } = request;
    if (request.client !== undefined) {
      const minute = minuteIndex(now);
      const current = this.clients.get(request.client.clientId);
      const count = current?.minute === minute ? current.count : 0;
      if (count >= request.client.rpm) return { kind: 'client_limited', retryAt: (minute + 1) * MINUTE_MS };
      this.clients.set(request.client.clientId, { minute, count: count + 1 });
    }
    const tokens = request.tokens ?? 0;
    const limitsOf = (k: KeyRef) =>
      effectiveLimits(request.limits, this.learnedLimits.get(budgetModelKey(k.budget, model)), now);
    const views = request.keys.map((k) => toView(this.key(group, k.keyId)));
    const skip = new Set(request.exclude);
    const held = new QuotaHold();
    for (const k of request.keys) {
      const limits = limitsOf(k);
      if (!hasLimits(limits)) continue;
      if (held.tooLarge(limits, tokens)) skip.add(k.keyId);
      else if (
        !held.fits(quotaVerdict(limits, this.budgets.get(budgetModelKey(k.budget, model)), now, tokens))
      ) {
        skip.add(k.keyId);
      }
    }
    const picked = pickKey(views, this.cursors.get(group) ?? 0, model, now, skip, request.health);
    if ('retryAt' in picked) return held.unavailable(picked);
    if (request.retry !== true) this.cursors.set(group, (picked.index + 1) % views.length);
    const ref = request.keys[picked.index]!;
    const limits = limitsOf(ref);
    if (!hasLimits(limits)) return { kind: 'key', keyId: picked.keyId };
    const id = budgetModelKey(ref.budget, model);
    this.budgets.set(id, countRequest(limits, this.budgets.get(id), now, tokens));
    const windowMs = rpmWindow(limits);
    return {
      kind: 'key',
      keyId: picked.keyId,
      claim: { budget: ref.budget, window: minuteIndex(now, windowMs), windowMs, tokens },
    };
  }

  async record(update: KeyStateUpdate): Promise<void> {
    if (update.kind === 'learned') {
      const id = budgetModelKey(update.budget, update.model);
      this.learnedLimits.set(id, {
        ...this.learnedLimits.get(id),
        [update.metric]: { limit: update.limit, until: update.until },
      });
      return;
    }
    if (update.kind === 'tokens') {
      const id = budgetModelKey(update.claim.budget, update.model);
      const counts = chargeTokens(this.budgets.get(id), update.claim.window, update.delta);
      if (counts !== undefined) this.budgets.set(id, counts);
      return;
    }
    applyUpdate(this.key(update.group, update.keyId), update);
  }

  async learned(_group: string, budgets: readonly string[], now: number): Promise<LearnedLimitView[]> {
    return learnedViews(this.learnedLimits, budgets, now);
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
