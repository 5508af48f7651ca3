import { budgetModelKey } from '../../../core/key-state/quota-hold.js';
/** Choosing a key on DynamoDB: by the shared rotation, or by claiming its budget (configured or learned limits). */

import type { AcquireRequest, Acquisition, KeyRef, QuotaLimits } from '../../../core/key-state/port.js';
import { effectiveLimits, hasLimits } from '../../../core/key-state/quota.js';
import { QuotaHold } from '../../../core/key-state/quota-hold.js';
import { isUsable, pickKey, unavailable } from '../../../core/key-state/rotation.js';
import type { BudgetWindows } from './budgets.js';
import type { GroupCache, GroupStateCache } from './group-cache.js';
import { num, type StateTable } from './table.js';

/**
 * Picks a group's key for a request in one DynamoDB round trip: without limits, the shared rotation
 * counter (`ADD`) alongside the cached group state; with limits (configured, or learned from Gemini and
 * cached with the group's state), a conditional budget claim, each instance rotating on its own.
 */
export class KeySelection {
  private readonly cursors = new Map<string, number>();

  constructor(
    private readonly table: StateTable,
    private readonly cache: GroupStateCache,
    private readonly budgets: BudgetWindows,
    private readonly rotationShards: number,
  ) {}

  /** A key for the request, or why none. */
  pick(request: AcquireRequest): Promise<Acquisition> {
    return this.budgeted(request) ? this.acquireWithBudget(request) : this.acquireByRotation(request);
  }

  /** The limits of a key's budget for the request's model: configured, else as Gemini reported (cached). */
  private limitsOf(
    cache: GroupCache | undefined,
    request: AcquireRequest,
    ref: KeyRef,
  ): QuotaLimits | undefined {
    const learned = cache?.learned.get(budgetModelKey(ref.budget, request.model));
    const limits = effectiveLimits(request.limits, learned, request.now);
    return hasLimits(limits) ? limits : undefined;
  }

  /** Whether the request needs a budget claim: configured limits, or limits learned for its model. */
  budgeted(request: AcquireRequest): boolean {
    if (hasLimits(request.limits)) return true;
    const cache = this.cache.peek(request.group);
    if (cache === undefined || cache.learned.size === 0) return false;
    return request.keys.some((k) => this.limitsOf(cache, request, k) !== undefined);
  }

  private async acquireByRotation(request: AcquireRequest): Promise<Acquisition> {
    const { group, keys, model, now } = request;
    const shard = Math.floor(Math.random() * this.rotationShards);
    // A retry keeps its key and leaves the shared rotation where it is.
    const [cache, pos] = await Promise.all([
      this.cache.fresh(group),
      request.retry === true ? -shard : this.advance(group, shard),
    ]);
    // Each shard walks every key in turn (offset by its number), so the sum over shards stays even.
    const picked = pickKey(
      this.cache.views(cache, keys),
      pos + shard,
      model,
      now,
      request.exclude,
      request.health,
    );
    if ('retryAt' in picked) return unavailable(picked.retryAt, undefined, { parked: picked.parked });
    // The first read showed limits learned for this model: claim like any budgeted request.
    if (this.limitsOf(cache, request, keys[picked.index]!) !== undefined)
      return this.acquireWithBudget(request);
    return { kind: 'key', keyId: picked.keyId };
  }

  private async acquireWithBudget(request: AcquireRequest): Promise<Acquisition> {
    const { group, keys, model, now } = request;
    const tokens = request.tokens ?? 0;
    const cached = this.cache.peek(group);
    let pending: Promise<GroupCache> | undefined = this.cache.fresh(group);
    // Cold start: nothing to choose from yet, so this one read comes first.
    let cache = cached ?? (await pending);
    if (cached === undefined) pending = undefined;
    const skip = new Set(request.exclude);
    const held = new QuotaHold();
    const cursor = this.cursors.get(group) ?? Math.floor(Math.random() * keys.length);
    let surveyed = false;
    for (let tries = 0; tries <= keys.length; tries++) {
      for (const k of keys) {
        const limits = skip.has(k.keyId) ? undefined : this.limitsOf(cache, request, k);
        if (limits === undefined) continue;
        const full = this.budgets.fullFor(k.budget, model, now, limits);
        if (held.tooLarge(limits, tokens)) skip.add(k.keyId);
        else if (full !== undefined) {
          skip.add(k.keyId);
          held.held(full.until, full.metric);
        } else if (!held.fits(this.budgets.hint(k.budget, model, limits, now, tokens))) skip.add(k.keyId);
      }
      const picked = pickKey(this.cache.views(cache, keys), cursor + tries, model, now, skip, request.health);
      if ('retryAt' in picked) {
        if (pending === undefined) return held.unavailable(picked);
        // The stale copy may be wrong about that too: decide on the fresh one.
        cache = await pending;
        pending = undefined;
        continue;
      }
      const ref = keys[picked.index]!;
      const limits = this.limitsOf(cache, request, ref);
      const claim = limits === undefined ? undefined : this.budgets.claim(ref, model, limits, now, tokens);
      let result: Awaited<typeof claim>;
      if (pending !== undefined) {
        // The claim goes out alongside the state read; if the fresh state rules the key out, the
        // claimed unit is spent unused (rare: only when the key changed within the cache time).
        [cache, result] = await Promise.all([pending, claim]);
        pending = undefined;
        if (!isUsable(this.cache.views(cache, [ref])[0]!, model, now)) {
          skip.add(ref.keyId);
          continue;
        }
      } else {
        result = await claim;
      }
      if (result === undefined || 'granted' in result) {
        if (request.retry !== true) this.cursors.set(group, picked.index + 1);
        return { kind: 'key', keyId: picked.keyId, claim: result?.granted };
      }
      skip.add(ref.keyId);
      held.held(result.retryAt, result.metric);
      if (!surveyed) {
        // Budgets tend to fill together: rather than find each full one by a failed claim, read the
        // other budgets' windows in one call and skip those already full.
        surveyed = true;
        await this.budgets.survey(keys, model, (k) => this.limitsOf(cache, request, k), now);
      }
    }
    return held.unavailable({ retryAt: undefined });
  }

  private async advance(group: string, shard: number): Promise<number> {
    const out = await this.table.update({
      Key: { pk: `rr#${group}#${shard}`, sk: 'rr' },
      UpdateExpression: 'ADD #pos :one',
      ExpressionAttributeNames: { '#pos': 'pos' },
      ExpressionAttributeValues: { ':one': 1 },
      ReturnValues: 'UPDATED_NEW',
    });
    return (num(out?.pos) ?? 1) - 1;
  }
}
