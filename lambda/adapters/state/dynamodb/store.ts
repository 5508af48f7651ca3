import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type {
  AcquireRequest,
  Acquisition,
  Cooldown,
  CooldownCause,
  KeyStateStore,
  KeyStateUpdate,
  KeyView,
  QuotaLimits,
} from '../../../core/key-state/port.js';
import { isUsable, pickKey } from '../../../core/key-state/port.js';
import { hasLimits } from '../../../core/key-state/quota.js';
import { soonest } from '../memory-store.js';
import { BudgetWindows } from './budgets.js';
import { type GroupCache, GroupStateCache } from './group-cache.js';
import { num, StateTable, str, ttlAfter } from './table.js';

export interface DynamoDbStoreOptions {
  readonly client: DynamoDBClient;
  readonly table: string;
  /** How long what was read of a group's key state is trusted before it is read again. */
  readonly cacheMs: number;
  /** Shards of each group's rotation counter. */
  readonly rotationShards: number;
  /** Clock; injectable for tests. */
  readonly now?: () => number;
  /** Success counters are written at most this often per instance (default 5 s). */
  readonly flushEveryMs?: number;
}

interface SuccessTally {
  group: string;
  keyId: string;
  count: number;
  latencyMs: number;
  lastAt: number;
}

/**
 * Key state in one DynamoDB table, shared by every instance:
 *
 * | pk | sk | holds |
 * |---|---|---|
 * | `grp#<group>` | `key#<keyId>` | status, reason, success counters |
 * | `grp#<group>` | `cool#<keyId>#<model>` | cooldown `until`, `cause`, ttl |
 * | `rr#<group>#<shard>` | `rr` | rotation counter `pos` |
 * | `quota#…`, `client#…` | | budget and client windows: see {@link BudgetWindows} |
 *
 * Every write that decides something is conditional: cooldowns only extend, `invalid` never overwrites
 * `disabled`, a budget or client window never passes its limit. A lost race is resolved from the item
 * DynamoDB returns (`ReturnValuesOnConditionCheckFailure: ALL_OLD`), or one consistent read where an engine
 * does not return it. Key state is cached per instance for `cacheMs`, refreshed in the background.
 */
export class DynamoDbKeyStateStore implements KeyStateStore {
  private readonly table: StateTable;
  private readonly budgets: BudgetWindows;
  private readonly now: () => number;
  private readonly cache: GroupStateCache;
  private readonly cursors = new Map<string, number>();
  private readonly tallies = new Map<string, SuccessTally>();
  private lastFlush: number;

  constructor(private readonly options: DynamoDbStoreOptions) {
    this.table = new StateTable(options.client, options.table);
    this.budgets = new BudgetWindows(this.table);
    this.cache = new GroupStateCache(this.table, options.cacheMs, () => this.now());
    this.now = options.now ?? Date.now;
    this.lastFlush = this.now();
  }

  async acquire(request: AcquireRequest): Promise<Acquisition> {
    const { now } = request;
    if (request.client !== undefined) {
      const until = this.budgets.clientRefusedUntil(request.client, now);
      if (until !== undefined) return { kind: 'client_limited', retryAt: until };
    }
    // The client's window claim runs alongside the key's: one round trip of latency for both.
    const clientClaim =
      request.client === undefined ? undefined : this.budgets.claimClient(request.client, now);
    // Awaited below; marked handled now so a failing key claim can't leave it unhandled.
    clientClaim?.catch(() => undefined);
    const result = hasLimits(request.limits)
      ? await this.acquireWithBudget(request, request.limits)
      : await this.acquireByRotation(request);
    if (clientClaim !== undefined) {
      const retryAt = await clientClaim;
      // A key claimed for a refused client costs one unit of budget; the refusal is then cached, so it
      // happens at most once per client, instance and minute.
      if (retryAt !== undefined) return { kind: 'client_limited', retryAt };
    }
    return result;
  }

  async record(update: KeyStateUpdate): Promise<void> {
    switch (update.kind) {
      case 'success':
        this.tally(update.group, update.keyId, update.latencyMs);
        if (this.now() - this.lastFlush >= (this.options.flushEveryMs ?? 5000)) await this.flush();
        return;
      case 'cooldown':
        return this.extendCooldown(update.group, update.keyId, update.model, update.cooldown);
      case 'invalid':
        return this.markInvalid(update.group, update.keyId, update.reason);
      case 'operator':
        return this.setDisabled(update.group, update.keyId, update.status === 'disabled');
      case 'revive':
        return this.revive(update.group, update.keyId, update.reasons);
      case 'clear_expired': {
        const cache = await this.cache.fresh(update.group);
        const entry = cache.keys.get(update.keyId);
        for (const [model, c] of entry?.cooldowns ?? []) {
          if (c.until > update.now) continue;
          // Conditional: a cooldown someone extended meanwhile stays.
          const deleted = await this.table.deleteIf(
            { pk: `grp#${update.group}`, sk: `cool#${update.keyId}#${model}` },
            '#until <= :now',
            { '#until': 'until' },
            { ':now': update.now },
          );
          if (deleted) entry?.cooldowns.delete(model);
        }
        return;
      }
      case 'checked': {
        // Not a decision, a note: unconditional, and the status is not touched.
        await this.table.update({
          Key: { pk: `grp#${update.group}`, sk: `key#${update.keyId}` },
          UpdateExpression: 'SET #c = :c, #ca = :at',
          ExpressionAttributeNames: { '#c': 'lastCheck', '#ca': 'lastCheckAt' },
          ExpressionAttributeValues: { ':c': update.outcome, ':at': update.at },
        });
        const entry = this.cache.entry(update.group, update.keyId);
        if (entry !== undefined) entry.lastCheck = { outcome: update.outcome, at: update.at };
        return;
      }
    }
  }

  async describe(group: string, keyIds: readonly string[]): Promise<KeyView[]> {
    return this.cache.views(
      await this.cache.load(group),
      keyIds.map((keyId) => ({ keyId })),
      true,
    );
  }

  /** Writes the success counters gathered since the last flush (one UpdateItem per key). */
  async flush(): Promise<void> {
    this.lastFlush = this.now();
    const tallies = [...this.tallies.values()];
    this.tallies.clear();
    await Promise.all(
      tallies.map(async (t) => {
        try {
          await this.table.update({
            Key: { pk: `grp#${t.group}`, sk: `key#${t.keyId}` },
            // Counters only: status is never touched, so a success can't revive an invalid key.
            UpdateExpression: 'ADD #ok :n, #lat :l SET #last = :t',
            ExpressionAttributeNames: { '#ok': 'okCount', '#lat': 'okLatencyMs', '#last': 'lastOkAt' },
            ExpressionAttributeValues: { ':n': t.count, ':l': t.latencyMs, ':t': t.lastAt },
          });
        } catch (err) {
          // Put the counts back so the next flush carries them; then let the caller know.
          this.tally(t.group, t.keyId, t.latencyMs, t.count, t.lastAt);
          throw err;
        }
      }),
    );
  }

  private async acquireByRotation(request: AcquireRequest): Promise<Acquisition> {
    const { group, keys, model, now } = request;
    const shard = Math.floor(Math.random() * this.options.rotationShards);
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
    if ('retryAt' in picked) return unavailable(picked.retryAt, undefined);
    return { kind: 'key', keyId: picked.keyId };
  }

  private async acquireWithBudget(request: AcquireRequest, limits: QuotaLimits): Promise<Acquisition> {
    const { group, keys, model, now } = request;
    const cached = this.cache.peek(group);
    let pending: Promise<GroupCache> | undefined = this.cache.fresh(group);
    // Cold start: nothing to choose from yet, so this one read comes first.
    let cache = cached ?? (await pending);
    if (cached === undefined) pending = undefined;
    const skip = new Set(request.exclude);
    let quotaRetryAt: number | undefined;
    const cursor = this.cursors.get(group) ?? Math.floor(Math.random() * keys.length);
    let surveyed = false;
    for (let tries = 0; tries <= keys.length; tries++) {
      for (const k of keys) {
        const until = this.budgets.fullFor(k.budget, model, now);
        if (until !== undefined) {
          skip.add(k.keyId);
          quotaRetryAt = Math.min(quotaRetryAt ?? Infinity, until);
        }
      }
      const picked = pickKey(this.cache.views(cache, keys), cursor + tries, model, now, skip, request.health);
      if ('retryAt' in picked) {
        if (pending === undefined) return unavailable(picked.retryAt, quotaRetryAt);
        // The stale copy may be wrong about that too: decide on the fresh one.
        cache = await pending;
        pending = undefined;
        continue;
      }
      const ref = keys[picked.index]!;
      let refused: number | undefined;
      if (pending !== undefined) {
        // The claim goes out alongside the state read; if the fresh state rules the key out, the
        // claimed unit is spent unused (rare: only when the key changed within the cache time).
        [cache, refused] = await Promise.all([pending, this.budgets.claim(ref, model, limits, now)]);
        pending = undefined;
        if (!isUsable(this.cache.views(cache, [ref])[0]!, model, now)) {
          skip.add(ref.keyId);
          continue;
        }
      } else {
        refused = await this.budgets.claim(ref, model, limits, now);
      }
      if (refused === undefined) {
        if (request.retry !== true) this.cursors.set(group, picked.index + 1);
        return { kind: 'key', keyId: picked.keyId };
      }
      this.budgets.markFull(ref.budget, model, refused);
      quotaRetryAt = Math.min(quotaRetryAt ?? Infinity, refused);
      if (!surveyed) {
        // Budgets tend to fill together: rather than find each full one by a failed claim, read the
        // other budgets' windows in one call and skip those already full.
        surveyed = true;
        await this.budgets.survey(keys, model, limits, now);
      }
    }
    return unavailable(undefined, quotaRetryAt);
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

  private async extendCooldown(
    group: string,
    keyId: string,
    model: string,
    cooldown: Cooldown,
  ): Promise<void> {
    const Key = { pk: `grp#${group}`, sk: `cool#${keyId}#${model}` };
    let kept = cooldown;
    try {
      await this.table.update({
        Key,
        UpdateExpression: 'SET #until = :until, #cause = :cause, #ttl = :ttl',
        ConditionExpression: 'attribute_not_exists(#until) OR #until < :until',
        ExpressionAttributeNames: { '#until': 'until', '#cause': 'cause', '#ttl': 'ttl' },
        ExpressionAttributeValues: {
          ':until': cooldown.until,
          ':cause': cooldown.cause,
          ':ttl': ttlAfter(cooldown.until),
        },
      });
    } catch (err) {
      // Someone already set a longer cooldown: keep theirs.
      const current = await this.table.itemOnConflict(err, Key);
      const until = num(current?.until);
      if (until !== undefined) kept = { until, cause: (str(current?.cause) ?? 'quota') as CooldownCause };
    }
    const entry = this.cache.entry(group, keyId);
    const cached = entry?.cooldowns.get(model);
    if (entry !== undefined && (cached === undefined || cached.until < kept.until)) {
      entry.cooldowns.set(model, kept);
    }
  }

  /** Marks a key invalid unless it already is; the operator's disable flag is untouched either way. */
  private async markInvalid(group: string, keyId: string, reason: string): Promise<void> {
    const Key = { pk: `grp#${group}`, sk: `key#${keyId}` };
    let stored = { health: 'invalid' as 'active' | 'invalid', reason: reason as string | undefined };
    try {
      await this.table.update({
        Key,
        UpdateExpression: 'SET #s = :invalid, #r = :reason, #at = :now ADD #v :one',
        ConditionExpression: 'attribute_not_exists(#s) OR #s = :active',
        ExpressionAttributeNames: { '#s': 'status', '#r': 'reason', '#at': 'statusAt', '#v': 'version' },
        ExpressionAttributeValues: {
          ':invalid': 'invalid',
          ':active': 'active',
          ':reason': reason,
          ':now': this.now(),
          ':one': 1,
        },
      });
    } catch (err) {
      // Already invalid (for the first reason found): adopt what is stored.
      const item = await this.table.itemOnConflict(err, Key);
      stored = { health: str(item?.status) === 'invalid' ? 'invalid' : 'active', reason: str(item?.reason) };
    }
    const entry = this.cache.entry(group, keyId);
    if (entry !== undefined) {
      entry.health = stored.health;
      entry.reason = stored.reason;
      entry.changedAt = this.now();
    }
  }

  /** Back to active, only from `invalid` for one of the given reasons (conditional: races can't undo more). */
  private async revive(group: string, keyId: string, reasons: readonly string[]): Promise<void> {
    if (reasons.length === 0) return;
    const Key = { pk: `grp#${group}`, sk: `key#${keyId}` };
    const values: Record<string, unknown> = {
      ':invalid': 'invalid',
      ':active': 'active',
      ':now': this.now(),
      ':one': 1,
    };
    reasons.forEach((r, i) => {
      values[`:r${i}`] = r;
    });
    let health: 'active' | 'invalid' = 'active';
    let reason: string | undefined;
    try {
      await this.table.update({
        Key,
        UpdateExpression: 'SET #s = :active, #at = :now REMOVE #r ADD #v :one',
        ConditionExpression: `#s = :invalid AND #r IN (${reasons.map((_, i) => `:r${i}`).join(', ')})`,
        ExpressionAttributeNames: { '#s': 'status', '#r': 'reason', '#at': 'statusAt', '#v': 'version' },
        ExpressionAttributeValues: values,
      });
    } catch (err) {
      const item = await this.table.itemOnConflict(err, Key);
      health = str(item?.status) === 'invalid' ? 'invalid' : 'active';
      reason = str(item?.reason);
    }
    const entry = this.cache.entry(group, keyId);
    if (entry !== undefined) {
      entry.health = health;
      entry.reason = reason;
      entry.changedAt = this.now();
    }
  }

  /** The operator's switch: `disabled` wins over everything; lifting it leaves the key's health as it is. */
  private async setDisabled(group: string, keyId: string, disabled: boolean): Promise<void> {
    await this.table.update({
      Key: { pk: `grp#${group}`, sk: `key#${keyId}` },
      UpdateExpression: disabled
        ? 'SET #d = :true, #at = :now ADD #v :one'
        : 'SET #at = :now REMOVE #d ADD #v :one',
      ExpressionAttributeNames: { '#d': 'disabled', '#at': 'statusAt', '#v': 'version' },
      ExpressionAttributeValues: disabled
        ? { ':true': true, ':now': this.now(), ':one': 1 }
        : { ':now': this.now(), ':one': 1 },
    });
    const entry = this.cache.entry(group, keyId);
    if (entry !== undefined) {
      entry.disabled = disabled;
      entry.changedAt = this.now();
    }
  }

  /** Cooldowns and statuses this instance knows, as updates a fallback store can apply. */
  snapshot(): KeyStateUpdate[] {
    return this.cache.snapshot();
  }

  private tally(group: string, keyId: string, latencyMs: number, count = 1, lastAt = this.now()): void {
    const id = `${group}\u0000${keyId}`;
    const t = this.tallies.get(id) ?? { group, keyId, count: 0, latencyMs: 0, lastAt };
    t.count += count;
    t.latencyMs += latencyMs;
    t.lastAt = Math.max(t.lastAt, lastAt);
    this.tallies.set(id, t);
  }
}

function unavailable(coolingRetryAt: number | undefined, quotaRetryAt: number | undefined): Acquisition {
  const next = soonest({ at: coolingRetryAt, cause: 'cooling' }, { at: quotaRetryAt, cause: 'quota' });
  return { kind: 'unavailable', retryAt: next.at, cause: next.cause };
}
