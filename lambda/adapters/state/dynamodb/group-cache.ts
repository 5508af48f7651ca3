import { BoundedMap } from '../../../core/bounded-map.js';
import type {
  Cooldown,
  CooldownCause,
  KeyStateUpdate,
  KeyStatus,
  KeyView,
} from '../../../core/key-state/port.js';
import { MAX_COOLDOWN_MODELS_PER_KEY } from '../memory-store.js';
import { num, type StateTable, str } from './table.js';

/** What an instance knows of one key. `disabled` is the operator's switch, kept apart from health. */
export interface CachedKey {
  health: Exclude<KeyStatus, 'disabled'>;
  reason: string | undefined;
  disabled: boolean;
  cooldowns: BoundedMap<string, Cooldown>;
  lastCheck?: { outcome: string; at: number } | undefined;
  /** When this instance last changed it: a read that started earlier must not undo that. */
  changedAt: number;
}

export interface GroupCache {
  at: number;
  keys: Map<string, CachedKey>;
}

const newKey = (): CachedKey => ({
  health: 'active',
  reason: undefined,
  disabled: false,
  cooldowns: new BoundedMap(MAX_COOLDOWN_MODELS_PER_KEY),
  changedAt: 0,
});

const NO_COOLDOWNS: ReadonlyMap<string, Cooldown> = new Map();

/** A read-only view; `copy` detaches the cooldowns (for callers that keep it), the hot path doesn't. */
function view(keyId: string, k: CachedKey | undefined, copy: boolean): KeyView {
  if (k === undefined)
    return { keyId, status: 'active', reason: undefined, cooldowns: copy ? new Map() : NO_COOLDOWNS };
  return {
    keyId,
    status: k.disabled ? 'disabled' : k.health,
    reason: k.disabled ? 'operator' : k.reason,
    cooldowns: copy ? new Map(k.cooldowns) : k.cooldowns,
    lastCheck: k.lastCheck,
  };
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

  async load(group: string): Promise<GroupCache> {
    const started = this.now();
    const keys = new Map<string, CachedKey>();
    const entry = (keyId: string) => {
      let k = keys.get(keyId);
      if (k === undefined) {
        k = newKey();
        keys.set(keyId, k);
      }
      return k;
    };
    for (const item of await this.table.query(`grp#${group}`)) {
      const sk = str(item.sk) ?? '';
      if (sk.startsWith('key#')) {
        const k = entry(sk.slice(4));
        k.health = str(item.status) === 'invalid' ? 'invalid' : 'active';
        k.reason = str(item.reason);
        k.disabled = item.disabled === true;
        const checkedAt = num(item.lastCheckAt);
        const outcome = str(item.lastCheck);
        k.lastCheck =
          checkedAt === undefined || outcome === undefined ? undefined : { outcome, at: checkedAt };
      } else if (sk.startsWith('cool#')) {
        const rest = sk.slice(5);
        const hash = rest.indexOf('#');
        const until = num(item.until);
        if (hash > 0 && until !== undefined) {
          entry(rest.slice(0, hash)).cooldowns.set(rest.slice(hash + 1), {
            until,
            cause: (str(item.cause) ?? 'quota') as CooldownCause,
          });
        }
      }
    }
    // What this instance wrote while the read was in flight may not be in it: keep that. A cooldown
    // that has ended is not carried (the table's copy, if any, came with the read).
    const now = this.now();
    for (const [keyId, mine] of this.groups.get(group)?.keys ?? []) {
      const read = entry(keyId);
      for (const [model, c] of mine.cooldowns) {
        if (c.until <= now) continue;
        const other = read.cooldowns.get(model);
        if (other === undefined || other.until < c.until) read.cooldowns.set(model, c);
      }
      if (mine.changedAt >= started) {
        read.health = mine.health;
        read.reason = mine.reason;
        read.disabled = mine.disabled;
        read.changedAt = mine.changedAt;
      }
    }
    const cache: GroupCache = { at: this.now(), keys };
    this.groups.set(group, cache);
    return cache;
  }

  /** Cooldowns and statuses this instance knows, as updates a fallback store can apply. */
  snapshot(): KeyStateUpdate[] {
    const now = this.now();
    const updates: KeyStateUpdate[] = [];
    for (const [group, cache] of this.groups) {
      for (const [keyId, k] of cache.keys) {
        if (k.health === 'invalid')
          updates.push({ kind: 'invalid', group, keyId, reason: k.reason ?? 'unknown' });
        if (k.disabled) updates.push({ kind: 'operator', group, keyId, status: 'disabled' });
        for (const [model, cooldown] of k.cooldowns) {
          if (cooldown.until > now) updates.push({ kind: 'cooldown', group, keyId, model, cooldown });
        }
      }
    }
    return updates;
  }

  /**
   * Views of the given keys. The hot path reads them at once and shares the cached cooldowns; `copy`
   * detaches them, for callers that keep the views.
   */
  views(cache: GroupCache, keys: ReadonlyArray<{ readonly keyId: string }>, copy = false): KeyView[] {
    return keys.map(({ keyId }) => view(keyId, cache.keys.get(keyId), copy));
  }

  /** The cached entry of a key (created if the group is cached), to apply this instance's own writes. */
  entry(group: string, keyId: string): CachedKey | undefined {
    const cache = this.groups.get(group);
    if (cache === undefined) return undefined;
    let k = cache.keys.get(keyId);
    if (k === undefined) {
      k = newKey();
      cache.keys.set(keyId, k);
    }
    return k;
  }
}
