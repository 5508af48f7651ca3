import { extendCooldown, isCooling } from '../../../core/key-state/cooldown.js';
import { type KeyRecord, newKeyRecord, recordUpdates, toView } from '../../../core/key-state/key-record.js';
import type { KeyStateUpdate, KeyView, LearnedLimits } from '../../../core/key-state/port.js';
import { budgetModelKey } from '../../../core/key-state/quota-hold.js';
import { groupPk, readGroupItem } from './key-items.js';
import { mergeLearned, readLearnedItem } from './learned-items.js';
import type { StateTable } from './table.js';

/** What an instance knows of one key: its record, and when this instance last changed its status. */
export interface CachedKey extends KeyRecord {
  /** When this instance last changed the key's status: a read that started earlier must not undo that. */
  changedAt: number;
  /**
   * When this instance last finished writing a cooldown of the key, and how many such writes are in
   * flight: a read that started before one landed may miss it. Cooldowns it only read are not carried past
   * the next read (the table's word wins: an operator's reset sticks).
   */
  cooledAt: number;
  coolingWrites: number;
}

/** What an instance knows of one group's keys, and when it was read. */
export interface GroupCache {
  at: number;
  keys: Map<string, CachedKey>;
  /** Limits learned from Gemini, by budget×model (`budgetModelKey`). */
  learned: Map<string, LearnedLimits>;
  /** When this instance last wrote each learned limit (a read keeps only those written meanwhile). */
  learnedAt: Map<string, number>;
}

/**
 * What one instance knows of each group's key state (the `grp#<group>` partition: statuses and
 * cooldowns), read with one Query and trusted for `cacheMs`. Writes made by this instance are applied to
 * it at once and survive a read that was already in flight.
 */
export class GroupStateCache {
  private readonly groups = new Map<string, GroupCache>();
  /** Reads of a group's state in flight, shared by concurrent requests of this instance. */
  private readonly loading = new Map<string, Promise<GroupCache>>();

  constructor(
    private readonly table: StateTable,
    private readonly cacheMs: number,
    private readonly now: () => number,
  ) {}

  /** The group's cache as it is (possibly old), or undefined before the first read. */
  peek(group: string): GroupCache | undefined {
    return this.groups.get(group);
  }

  /**
   * The group's state, at most `cacheMs` old: the cached copy while it is young enough, else a read
   * (one per instance at a time). Callers start it alongside their write so both cost one round trip.
   */
  fresh(group: string): Promise<GroupCache> {
    const cache = this.groups.get(group);
    if (cache !== undefined && this.now() - cache.at < this.cacheMs) return Promise.resolve(cache);
    let loading = this.loading.get(group);
    if (loading === undefined) {
      loading = this.load(group).finally(() => this.loading.delete(group));
      this.loading.set(group, loading);
    }
    return loading;
  }

  /** Reads the group's state now, keeping what this instance wrote while the read was in flight. */
  async load(group: string): Promise<GroupCache> {
    const started = this.now();
    const read: GroupCache = { at: started, keys: new Map(), learned: new Map(), learnedAt: new Map() };
    for (const item of await this.table.query(groupPk(group))) {
      const learned = readLearnedItem(item);
      if (learned !== undefined) read.learned.set(learned.id, learned.limits);
      else readGroupItem(item, (id) => cached(read, id));
    }
    // What this instance wrote while the read was in flight may not be in it: keep that. A cooldown
    // only extends, and one that has ended is not carried (the table's copy, if any, came with the read);
    // one it only read before is not carried either: gone from the table, it was reset.
    const now = this.now();
    const before = this.groups.get(group);
    // Learned limits likewise: only those this instance wrote while the read was in flight (one it merely
    // read before and the table no longer holds was reset by the operator).
    for (const [id, at] of before?.learnedAt ?? []) {
      const mine = before?.learned.get(id);
      if (at < started || mine === undefined) continue;
      read.learned.set(id, mergeLearned(read.learned.get(id), mine));
      read.learnedAt.set(id, at);
    }
    for (const [keyId, mine] of before?.keys ?? []) {
      const k = cached(read, keyId);
      if (mine.coolingWrites > 0 || mine.cooledAt >= started) {
        k.cooledAt = mine.cooledAt;
        k.coolingWrites = mine.coolingWrites;
        for (const [model, cooldown] of mine.cooldowns) {
          if (isCooling(cooldown, now)) extendCooldown(k.cooldowns, model, cooldown);
        }
      }
      if (mine.changedAt >= started) {
        k.validity = mine.validity;
        k.reason = mine.reason;
        k.disabled = mine.disabled;
        k.changedAt = mine.changedAt;
      }
    }
    read.at = this.now();
    this.groups.set(group, read);
    return read;
  }

  /** Cooldowns and statuses this instance knows, as updates a fallback store can apply. */
  snapshot(): KeyStateUpdate[] {
    const now = this.now();
    return [...this.groups].flatMap(([group, cache]) =>
      [...cache.keys.values()].flatMap((k) => recordUpdates(group, k, now)),
    );
  }

  /**
   * Views of the given keys. The hot path reads them at once and shares the cached cooldowns; `copy`
   * detaches them, for callers that keep the views.
   */
  views(cache: GroupCache, keys: ReadonlyArray<{ readonly keyId: string }>, copy = false): KeyView[] {
    return keys.map(({ keyId }) => toView(cached(cache, keyId), copy));
  }

  /** Notes a limit this instance learned (and wrote) in the group's cached copy, if the group is cached. */
  learn(update: Extract<KeyStateUpdate, { kind: 'learned' }>): void {
    const cache = this.groups.get(update.group);
    if (cache === undefined) return;
    const id = budgetModelKey(update.budget, update.model);
    cache.learned.set(
      id,
      mergeLearned(cache.learned.get(id), { [update.metric]: { limit: update.limit, until: update.until } }),
    );
    cache.learnedAt.set(id, this.now());
  }

  /** The cached record of a key (made if the group is cached), to apply this instance's own writes to. */
  entry(group: string, keyId: string): CachedKey | undefined {
    const cache = this.groups.get(group);
    return cache === undefined ? undefined : cached(cache, keyId);
  }
}

/** The record of a key in a group's cache, made fresh (active, not cooling) if the cache has none yet. */
function cached(cache: GroupCache, keyId: string): CachedKey {
  let k = cache.keys.get(keyId);
  if (k === undefined) {
    k = { ...newKeyRecord(keyId), changedAt: 0, cooledAt: 0, coolingWrites: 0 };
    cache.keys.set(keyId, k);
  }
  return k;
}
