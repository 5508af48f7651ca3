import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { isCooling } from '../../../core/key-state/cooldown.js';
import { applyUpdate } from '../../../core/key-state/key-record.js';
import type {
  AcquireRequest,
  Acquisition,
  KeyStateStore,
  KeyStateUpdate,
  KeyView,
  LearnedLimitView,
} from '../../../core/key-state/port.js';
import { learnedViews } from '../../../core/key-state/quota-hold.js';
import { BudgetWindows } from './budgets.js';
import { GroupStateCache } from './group-cache.js';
import {
  checkedWrite,
  cooldownItemKey,
  cooldownWrite,
  endedCooldownDelete,
  keyItemKey,
  type StatusUpdate,
  statusWrite,
  storedCooldown,
  storedValidity,
} from './key-items.js';
import { learnedWrite } from './learned-items.js';
import { KeySelection } from './selection.js';
import { SuccessTallies } from './success-tallies.js';
import { StateTable } from './table.js';

/** Where the shared key state lives, and how much of it one instance may trust without reading. */
export interface DynamoDbStoreOptions {
  readonly client: DynamoDBClient;
  /** The key-state table's name. */
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

/**
 * Key state in one DynamoDB table, shared by every instance:
 *
 * | pk | sk | holds |
 * |---|---|---|
 * | `grp#<group>` | `key#…`, `cool#…` | key status and cooldowns: see `key-items.ts` |
 * | `rr#<group>#<shard>` | `rr` | rotation counter `pos` |
 * | `quota#…`, `client#…` | | budget and client windows: see {@link BudgetWindows} |
 * | `usage#<day>` | `<clientId>#<keyId>#<model>` | usage counters (not the store's): see `usage-ledger.ts` |
 *
 * The rules are the core's: this store only translates. Every write that decides something is
 * conditional, its condition mirroring a rule of `applyUpdate` (a cooldown only extends, a key already
 * invalid keeps its reason, a revive needs one of its reasons) or a budget's limit. A lost race is resolved
 * from the item DynamoDB returns (`ReturnValuesOnConditionCheckFailure: ALL_OLD`), or one consistent read
 * where an engine does not return it. Key state is cached per instance for `cacheMs`
 * ({@link GroupStateCache}); after each write the cached record takes the update by the same rule, or,
 * after a lost race, what the table holds.
 */
export class DynamoDbKeyStateStore implements KeyStateStore {
  private readonly table: StateTable;
  private readonly budgets: BudgetWindows;
  private readonly now: () => number;
  private readonly cache: GroupStateCache;
  private readonly selection: KeySelection;
  private readonly successes: SuccessTallies;

  constructor(readonly options: DynamoDbStoreOptions) {
    this.table = new StateTable(options.client, options.table);
    this.budgets = new BudgetWindows(this.table);
    this.cache = new GroupStateCache(this.table, options.cacheMs, () => this.now());
    this.now = options.now ?? Date.now;
    this.selection = new KeySelection(this.table, this.cache, this.budgets, options.rotationShards);
    this.successes = new SuccessTallies(this.table, options.flushEveryMs ?? 5000, this.now);
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
    const result = await this.selection.pick(request);
    if (clientClaim !== undefined) {
      const retryAt = await clientClaim;
      // A key claimed for a refused client costs one unit of budget; the refusal is then cached, so it
      // happens at most once per client, instance and minute.
      if (retryAt !== undefined) return { kind: 'client_limited', retryAt };
    }
    return result;
  }

  needsClaim(request: AcquireRequest): boolean {
    return request.client !== undefined || this.selection.budgeted(request);
  }

  async record(update: KeyStateUpdate): Promise<void> {
    switch (update.kind) {
      case 'success':
        return this.successes.add(update.group, update.keyId, update.latencyMs);
      case 'cooldown':
        return this.extendCooldown(update);
      case 'invalid':
      case 'revive':
      case 'operator':
        return this.changeStatus(update);
      case 'clear_expired':
        return this.clearExpired(update);
      case 'learned':
        await this.table.update(learnedWrite(update));
        this.cache.learn(update);
        return;
      case 'tokens':
        return this.budgets.reconcile(update.model, update.claim, update.delta);
      case 'checked':
        await this.table.update({
          Key: keyItemKey(update.group, update.keyId),
          ...checkedWrite(update.outcome, update.at),
        });
        this.cached(update);
        return;
    }
  }

  async describe(group: string, keyIds: readonly string[]): Promise<KeyView[]> {
    return this.cache.views(
      await this.cache.load(group),
      keyIds.map((keyId) => ({ keyId })),
      true,
    );
  }

  async learned(group: string, budgets: readonly string[], now: number): Promise<LearnedLimitView[]> {
    return learnedViews((await this.cache.fresh(group)).learned, budgets, now);
  }

  /** Writes the success counters gathered since the last flush (one UpdateItem per key), and waits for window tidying. */
  async flush(): Promise<void> {
    await Promise.all([this.successes.flush(), this.budgets.settle()]);
  }

  /**
   * Sets a cooldown if it extends the stored one. This instance knows it at once (a cooldown only
   * extends, so what it learnt holds whatever the table says), and the longer stored one after a lost race.
   */
  private async extendCooldown(update: Extract<KeyStateUpdate, { kind: 'cooldown' }>): Promise<void> {
    const Key = cooldownItemKey(update.group, update.keyId, update.model);
    this.cached(update);
    // While the write is in flight, a read of the group keeps this cooldown (see GroupStateCache.load).
    const writing = this.cache.entry(update.group, update.keyId);
    if (writing !== undefined) writing.coolingWrites++;
    try {
      await this.table.update({ Key, ...cooldownWrite(update.cooldown) });
    } catch (err) {
      // Someone already set a longer cooldown: keep theirs.
      const stored = storedCooldown(await this.table.itemOnConflict(err, Key));
      if (stored !== undefined) this.cached({ ...update, cooldown: stored });
    } finally {
      const record = this.cache.entry(update.group, update.keyId);
      if (record !== undefined) {
        record.coolingWrites = Math.max(0, record.coolingWrites - 1);
        record.cooledAt = this.now();
      }
    }
  }

  /**
   * Marks a key invalid, revives it or flips the operator's switch, on the core's conditions. This
   * instance then applies the update to its copy, or, if a racing write won, adopts the stored validity.
   */
  private async changeStatus(update: StatusUpdate): Promise<void> {
    // No reason to revive from: nothing can match (and DynamoDB refuses an empty IN list).
    if (update.kind === 'revive' && update.reasons.length === 0) return;
    const Key = keyItemKey(update.group, update.keyId);
    let stored: ReturnType<typeof storedValidity> | undefined;
    try {
      await this.table.update({ Key, ...statusWrite(update, this.now()) });
    } catch (err) {
      stored = storedValidity(await this.table.itemOnConflict(err, Key));
    }
    const record = this.cache.entry(update.group, update.keyId);
    if (record === undefined) return;
    if (stored === undefined) applyUpdate(record, update);
    else Object.assign(record, stored);
    record.changedAt = this.now();
  }

  /**
   * Removes the key's cooldowns that ended before `now`, each on the condition that it still has: one
   * extended meanwhile stays. This instance's copy then drops its ended ones (selection ignores them anyway).
   */
  private async clearExpired(update: Extract<KeyStateUpdate, { kind: 'clear_expired' }>): Promise<void> {
    const record = (await this.cache.fresh(update.group)).keys.get(update.keyId);
    if (record === undefined) return;
    for (const [model, cooldown] of record.cooldowns) {
      if (isCooling(cooldown, update.now)) continue;
      await this.table.deleteIf(endedCooldownDelete(update.group, update.keyId, model, update.now));
    }
    applyUpdate(record, update);
  }

  /** Applies a write that landed to this instance's copy of the key (when its group is cached). */
  private cached(update: KeyStateUpdate): void {
    const record = this.cache.entry(update.group, update.keyId);
    if (record !== undefined) applyUpdate(record, update);
  }

  /** Cooldowns and statuses this instance knows, as updates a fallback store can apply. */
  snapshot(): KeyStateUpdate[] {
    return this.cache.snapshot();
  }
}
