import { BoundedMap } from '../../core/bounded-map.js';
import type {
  AcquireRequest,
  Acquisition,
  Cooldown,
  KeyStateStore,
  KeyStateUpdate,
  KeyView,
} from '../../core/key-state/port.js';
import { pickKey } from '../../core/key-state/port.js';
import {
  hasLimits,
  MINUTE_MS,
  minuteIndex,
  quotaVerdict,
  rpmWindow,
  type WindowCounts,
} from '../../core/key-state/quota.js';
import { pacificDay } from '../../core/pacific-time.js';

interface MutableKey {
  keyId: string;
  health: 'active' | 'invalid';
  reason?: string | undefined;
  /** The operator's switch, kept apart from health: lifting it restores whatever health the key has. */
  disabled: boolean;
  cooldowns: BoundedMap<string, Cooldown>;
  lastCheck?: { outcome: string; at: number } | undefined;
}

/** A read-only view; `copy` detaches the cooldowns (for callers that keep it), the hot path doesn't. */
function view(k: MutableKey, copy = false): KeyView {
  return {
    keyId: k.keyId,
    status: k.disabled ? 'disabled' : k.health,
    reason: k.disabled ? 'operator' : k.reason,
    cooldowns: copy ? new Map(k.cooldowns) : k.cooldowns,
    lastCheck: k.lastCheck,
  };
}

/** The soonest of two optional instants, and which of them it was. */
export function soonest<T extends string>(
  a: { at: number | undefined; cause: T },
  b: { at: number | undefined; cause: T },
): { at: number | undefined; cause: T | 'none' } {
  if (a.at === undefined) return b.at === undefined ? { at: undefined, cause: 'none' } : b;
  if (b.at === undefined) return a;
  return a.at <= b.at ? a : b;
}

/**
 * Most models one key holds cooldowns for. Gemini serves about a hundred; past the bound the cooldown
 * set longest ago is dropped (the key may then meet one more 429 for that model, which cools it again).
 */
export const MAX_COOLDOWN_MODELS_PER_KEY = 256;
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
 * on when DynamoDB is unreachable. Follows the shared store's rules: cooldowns only extend, invalid keys
 * are not revived by a success, a disabled key stays disabled until the operator lifts it. Everything keyed
 * by model is bounded, with O(1) upkeep per request: nothing is ever scanned.
 */
export class MemoryKeyStateStore implements KeyStateStore {
  private readonly keys = new Map<string, MutableKey>();
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
    const views = request.keys.map((k) => view(this.key(group, k.keyId)));
    let skip = request.exclude;
    let quotaRetryAt: number | undefined;
    if (hasLimits(limits)) {
      const blocked = new Set(request.exclude);
      for (const k of request.keys) {
        const verdict = quotaVerdict(limits, this.budgets.get(`${k.budget}\u0000${model}`), now);
        if (!verdict.ok) {
          blocked.add(k.keyId);
          quotaRetryAt = Math.min(quotaRetryAt ?? Infinity, verdict.retryAt);
        }
      }
      skip = blocked;
    }
    const picked = pickKey(views, this.cursors.get(group) ?? 0, model, now, skip, request.health);
    if ('retryAt' in picked) {
      const next = soonest({ at: picked.retryAt, cause: 'cooling' }, { at: quotaRetryAt, cause: 'quota' });
      return { kind: 'unavailable', retryAt: next.at, cause: next.cause };
    }
    if (request.retry !== true) this.cursors.set(group, (picked.index + 1) % views.length);
    if (hasLimits(limits)) {
      this.count(`${request.keys[picked.index]!.budget}\u0000${model}`, now, rpmWindow(limits));
    }
    return { kind: 'key', keyId: picked.keyId };
  }

  async record(update: KeyStateUpdate): Promise<void> {
    const key = this.key(update.group, update.keyId);
    switch (update.kind) {
      case 'success':
        return;
      case 'cooldown': {
        const current = key.cooldowns.get(update.model);
        if (current === undefined || current.until < update.cooldown.until)
          key.cooldowns.set(update.model, update.cooldown);
        return;
      }
      case 'invalid':
        if (key.health === 'active') {
          key.health = 'invalid';
          key.reason = update.reason;
        }
        return;
      case 'operator':
        key.disabled = update.status === 'disabled';
        return;
      case 'clear_expired':
        for (const [model, c] of key.cooldowns) if (c.until <= update.now) key.cooldowns.delete(model);
        return;
      case 'checked':
        key.lastCheck = { outcome: update.outcome, at: update.at };
        return;
      case 'revive':
        if (key.health === 'invalid' && update.reasons.includes(key.reason ?? '')) {
          key.health = 'active';
          key.reason = undefined;
        }
        return;
    }
  }

  async describe(group: string, keyIds: readonly string[]): Promise<KeyView[]> {
    return keyIds.map((id) => view(this.key(group, id), true));
  }

  async flush(): Promise<void> {}

  private count(budgetKey: string, now: number, windowMs: number): void {
    const day = pacificDay(now);
    const minute = minuteIndex(now, windowMs);
    const c = this.budgets.get(budgetKey);
    const sameDay = c?.day === day;
    this.budgets.set(budgetKey, {
      day,
      dayCount: (sameDay ? c.dayCount : 0) + 1,
      minute,
      minuteCount: (sameDay && c.minute === minute ? c.minuteCount : 0) + 1,
    });
  }

  private key(group: string, keyId: string): MutableKey {
    const id = `${group}\u0000${keyId}`;
    let key = this.keys.get(id);
    if (key === undefined) {
      key = {
        keyId,
        health: 'active',
        disabled: false,
        cooldowns: new BoundedMap(MAX_COOLDOWN_MODELS_PER_KEY),
      };
      this.keys.set(id, key);
    }
    return key;
  }
}
