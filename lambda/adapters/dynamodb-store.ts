import {
  type AttributeValue,
  ConditionalCheckFailedException,
  type DynamoDBClient,
} from '@aws-sdk/client-dynamodb';
import {
  BatchGetCommand,
  DynamoDBDocumentClient,
  GetCommand,
  QueryCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import type {
  AcquireRequest,
  Acquisition,
  ClientLimit,
  Cooldown,
  CooldownCause,
  KeyRef,
  KeyStateStore,
  KeyStateUpdate,
  KeyStatus,
  KeyView,
  QuotaLimits,
} from '../core/key-state.js';
import { isUsable, pickKey } from '../core/key-state.js';
import { nextPacificMidnight, pacificDay } from '../core/pacific-time.js';
import { hasLimits, MINUTE_MS, minuteIndex, quotaVerdict, rpmWindow } from '../core/quota.js';
import { soonest } from './memory-store.js';

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

type Item = Record<string, unknown>;

/** What an instance knows of one key. `disabled` is the operator's switch, kept apart from health. */
interface CachedKey {
  health: Exclude<KeyStatus, 'disabled'>;
  reason: string | undefined;
  disabled: boolean;
  cooldowns: Record<string, Cooldown>;
  /** When this instance last changed it: a read that started earlier must not undo that. */
  changedAt: number;
}

interface GroupCache {
  at: number;
  keys: Map<string, CachedKey>;
}

const newKey = (): CachedKey => ({
  health: 'active',
  reason: undefined,
  disabled: false,
  cooldowns: {},
  changedAt: 0,
});

function view(keyId: string, k: CachedKey | undefined): KeyView {
  if (k === undefined) return { keyId, status: 'active', reason: undefined, cooldowns: {} };
  return {
    keyId,
    status: k.disabled ? 'disabled' : k.health,
    reason: k.disabled ? 'operator' : k.reason,
    cooldowns: { ...k.cooldowns },
  };
}

interface SuccessTally {
  group: string;
  keyId: string;
  count: number;
  latencyMs: number;
  lastAt: number;
}

/** TTL (epoch seconds) a day after an item stops mattering: TTL only tidies, conditions decide. */
const ttlAfter = (epochMs: number) => Math.ceil(epochMs / 1000) + 86_400;
const num = (v: unknown): number | undefined => (typeof v === 'number' ? v : undefined);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

/**
 * Key state in one DynamoDB table, shared by every instance:
 *
 * | pk | sk | holds |
 * |---|---|---|
 * | `grp#<group>` | `key#<keyId>` | status, reason, success counters |
 * | `grp#<group>` | `cool#<keyId>#<model>` | cooldown `until`, `cause`, ttl |
 * | `rr#<group>#<shard>` | `rr` | rotation counter `pos` |
 * | `quota#<budget>#<model>` | `day#<Pacific day>#w<window ms>` | `d` today, `m` in minute `mw`, ttl |
 * | `client#<clientId>` | `min#<minute>` | `c` requests in that minute, ttl |
 *
 * Every write that decides something is conditional: cooldowns only extend, `invalid` never overwrites
 * `disabled`, a budget or client window never passes its limit. A lost race is resolved from the item
 * DynamoDB returns (`ReturnValuesOnConditionCheckFailure: ALL_OLD`), or one consistent read where an engine
 * does not return it. Key state is cached per instance for `cacheMs`, refreshed in the background.
 */
export class DynamoDbKeyStateStore implements KeyStateStore {
  private readonly doc: DynamoDBDocumentClient;
  private readonly now: () => number;
  private readonly groups = new Map<string, GroupCache>();
  /** Reads of a group's state in flight, shared by concurrent requests of this instance. */
  private readonly loading = new Map<string, Promise<GroupCache>>();
  private readonly cursors = new Map<string, number>();
  /** Budgets (and clients) known to be full, until when: skipped without a call. */
  private readonly fullUntil = new Map<string, number>();
  /** The minute each budget's window item was last seen in, to pick the write that will succeed. */
  private readonly windowMinute = new Map<string, number>();
  private readonly tallies = new Map<string, SuccessTally>();
  private lastFlush: number;

  constructor(private readonly options: DynamoDbStoreOptions) {
    this.doc = DynamoDBDocumentClient.from(options.client, {
      marshallOptions: { removeUndefinedValues: true },
    });
    this.now = options.now ?? Date.now;
    this.lastFlush = this.now();
  }

  async acquire(request: AcquireRequest): Promise<Acquisition> {
    const { now } = request;
    if (request.client !== undefined) {
      const until = this.fullUntil.get(clientKey(request.client));
      if (until !== undefined && until > now) return { kind: 'client_limited', retryAt: until };
    }
    // The client's window claim runs alongside the key's: one round trip of latency for both.
    const clientClaim = request.client === undefined ? undefined : this.claimClient(request.client, now);
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
    }
  }

  async describe(group: string, keyIds: readonly string[]): Promise<KeyView[]> {
    const cache = await this.load(group);

    return keyIds.map((keyId) => view(keyId, cache.keys.get(keyId)));
  }

  /** Writes the success counters gathered since the last flush (one UpdateItem per key). */
  async flush(): Promise<void> {
    this.lastFlush = this.now();
    const tallies = [...this.tallies.values()];
    this.tallies.clear();
    await Promise.all(
      tallies.map(async (t) => {
        try {
          await this.update({
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
    const [cache, pos] = await Promise.all([this.fresh(group), this.advance(group, shard)]);
    // Each shard walks every key in turn (offset by its number), so the sum over shards stays even.
    const picked = pickKey(this.views(cache, keys), pos + shard, model, now, request.exclude);
    if ('retryAt' in picked) return unavailable(picked.retryAt, undefined);
    return { kind: 'key', keyId: picked.keyId };
  }

  private async acquireWithBudget(request: AcquireRequest, limits: QuotaLimits): Promise<Acquisition> {
    const { group, keys, model, now } = request;
    const cached = this.groups.get(group);
    let pending: Promise<GroupCache> | undefined = this.fresh(group);
    // Cold start: nothing to choose from yet, so this one read comes first.
    let cache = cached ?? (await pending);
    if (cached === undefined) pending = undefined;
    const skip = new Set(request.exclude);
    let quotaRetryAt: number | undefined;
    const cursor = this.cursors.get(group) ?? Math.floor(Math.random() * keys.length);
    let surveyed = false;
    for (let tries = 0; tries <= keys.length; tries++) {
      for (const k of keys) {
        const until = this.fullUntil.get(budgetKey(k.budget, model));
        if (until !== undefined && until > now) {
          skip.add(k.keyId);
          quotaRetryAt = Math.min(quotaRetryAt ?? Infinity, until);
        }
      }
      const picked = pickKey(this.views(cache, keys), cursor + tries, model, now, skip);
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
        [cache, refused] = await Promise.all([pending, this.claimBudget(ref, model, limits, now)]);
        pending = undefined;
        if (!isUsable(this.views(cache, [ref])[0]!, model, now)) {
          skip.add(ref.keyId);
          continue;
        }
      } else {
        refused = await this.claimBudget(ref, model, limits, now);
      }
      if (refused === undefined) {
        this.cursors.set(group, picked.index + 1);
        return { kind: 'key', keyId: picked.keyId };
      }
      this.fullUntil.set(budgetKey(ref.budget, model), refused);
      quotaRetryAt = Math.min(quotaRetryAt ?? Infinity, refused);
      if (!surveyed) {
        // Budgets tend to fill together: rather than find each full one by a failed claim, read the
        // other budgets' windows in one call and skip those already full.
        surveyed = true;
        await this.survey(keys, model, limits, now);
      }
    }
    return unavailable(undefined, quotaRetryAt);
  }

  /** Reads the current windows of the given keys' budgets (one BatchGetItem) and notes which are full. */
  private async survey(keys: readonly KeyRef[], model: string, limits: QuotaLimits, now: number) {
    const today = pacificDay(now);
    const budgets = [...new Set(keys.map((k) => k.budget))].filter((b) => {
      const until = this.fullUntil.get(budgetKey(b, model));
      return until === undefined || until <= now;
    });
    const byPk = new Map(budgets.map((b) => [`quota#${b}#${model}`, b]));
    for (let i = 0; i < budgets.length; i += 100) {
      const out = await this.doc.send(
        new BatchGetCommand({
          RequestItems: {
            [this.options.table]: {
              Keys: [...byPk.keys()].slice(i, i + 100).map((pk) => ({ pk, sk: windowSk(today, limits) })),
            },
          },
        }),
      );
      for (const item of out.Responses?.[this.options.table] ?? []) {
        const budget = byPk.get(str(item.pk) ?? '');
        if (budget === undefined) continue;
        const mw = num(item.mw);
        const verdict = quotaVerdict(
          limits,
          { day: today, dayCount: num(item.d) ?? 0, minute: mw ?? -1, minuteCount: num(item.m) ?? 0 },
          now,
        );
        if (mw !== undefined) this.windowMinute.set(budgetKey(budget, model), mw);
        if (!verdict.ok) this.fullUntil.set(budgetKey(budget, model), verdict.retryAt);
      }
    }
  }

  /** Claims one request of a budget's current windows. Undefined when granted, else when it may be. */
  private async claimBudget(
    ref: KeyRef,
    model: string,
    limits: QuotaLimits,
    now: number,
  ): Promise<number | undefined> {
    const id = budgetKey(ref.budget, model);
    const today = pacificDay(now);
    const windowMs = rpmWindow(limits);
    const minute = minuteIndex(now, windowMs);
    // A budget is the project's (or key's) across every group: Gemini counts per project, not per group.
    const Key = { pk: `quota#${ref.budget}#${model}`, sk: windowSk(today, limits) };
    const names = { '#d': 'd', '#m': 'm', '#mw': 'mw', '#ttl': 'ttl' };
    const rpd = limits.rpd ?? Number.MAX_SAFE_INTEGER;
    const rpm = limits.rpm ?? Number.MAX_SAFE_INTEGER;
    const ttl = ttlAfter(nextPacificMidnight(now));
    let sameMinute = this.windowMinute.get(id) === minute;
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        const out = sameMinute
          ? await this.update({
              Key,
              UpdateExpression: 'SET #ttl = :ttl ADD #d :one, #m :one',
              ConditionExpression: '#mw = :mw AND #m < :rpm AND #d < :rpd',
              ExpressionAttributeNames: names,
              ExpressionAttributeValues: { ':one': 1, ':mw': minute, ':rpm': rpm, ':rpd': rpd, ':ttl': ttl },
            })
          : await this.update({
              Key,
              // First request of a new minute: restart the minute count, keep counting the day.
              UpdateExpression: 'SET #mw = :mw, #m = :one, #ttl = :ttl ADD #d :one',
              ConditionExpression:
                '(attribute_not_exists(#mw) OR #mw < :mw) AND (attribute_not_exists(#d) OR #d < :rpd)',
              ExpressionAttributeNames: names,
              ExpressionAttributeValues: { ':one': 1, ':mw': minute, ':rpd': rpd, ':ttl': ttl },
            });
        this.windowMinute.set(id, num(out?.mw) ?? minute);
        // Took the last unit: skip this budget without a call until its window opens again.
        const after = quotaVerdict(
          limits,
          {
            day: today,
            dayCount: num(out?.d) ?? 0,
            minute: num(out?.mw) ?? minute,
            minuteCount: num(out?.m) ?? 0,
          },
          now,
        );
        if (!after.ok) this.fullUntil.set(id, after.retryAt);
        return undefined;
      } catch (err) {
        const current = await this.itemOnConflict(err, Key);
        const mw = num(current?.mw);
        if (mw !== undefined) this.windowMinute.set(id, mw);
        const verdict = quotaVerdict(
          limits,
          current === undefined
            ? undefined
            : {
                day: today,
                dayCount: num(current.d) ?? 0,
                minute: mw ?? -1,
                minuteCount: num(current.m) ?? 0,
              },
          now,
        );
        if (!verdict.ok) return verdict.retryAt;
        // Not full: the write assumed the wrong minute (another instance rolled it, or we are first).
        sameMinute = mw === minute;
      }
    }
    // Clocks disagree about the minute: treat the budget as busy until the next one.
    return (minute + 1) * windowMs;
  }

  /** Counts a request in the client's minute window; undefined when allowed, else when it may be. */
  private async claimClient(client: ClientLimit, now: number): Promise<number | undefined> {
    const minute = minuteIndex(now);
    try {
      await this.update({
        Key: { pk: `client#${client.clientId}`, sk: `min#${minute}` },
        UpdateExpression: 'SET #ttl = :ttl ADD #c :one',
        ConditionExpression: 'attribute_not_exists(#c) OR #c < :rpm',
        ExpressionAttributeNames: { '#c': 'c', '#ttl': 'ttl' },
        ExpressionAttributeValues: { ':one': 1, ':rpm': client.rpm, ':ttl': ttlAfter(now) },
      });
      return undefined;
    } catch (err) {
      if (!(err instanceof ConditionalCheckFailedException)) throw err;
      const retryAt = (minute + 1) * MINUTE_MS;
      this.fullUntil.set(clientKey(client), retryAt);
      return retryAt;
    }
  }

  private async advance(group: string, shard: number): Promise<number> {
    const out = await this.update({
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
      await this.update({
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
      const current = await this.itemOnConflict(err, Key);
      const until = num(current?.until);
      if (until !== undefined) kept = { until, cause: (str(current?.cause) ?? 'quota') as CooldownCause };
    }
    const entry = this.cachedKey(group, keyId);
    const cached = entry?.cooldowns[model];
    if (entry !== undefined && (cached === undefined || cached.until < kept.until)) {
      entry.cooldowns[model] = kept;
    }
  }

  /** Marks a key invalid unless it already is; the operator's disable flag is untouched either way. */
  private async markInvalid(group: string, keyId: string, reason: string): Promise<void> {
    const Key = { pk: `grp#${group}`, sk: `key#${keyId}` };
    let stored = { health: 'invalid' as CachedKey['health'], reason: reason as string | undefined };
    try {
      await this.update({
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
      const item = await this.itemOnConflict(err, Key);
      stored = { health: str(item?.status) === 'invalid' ? 'invalid' : 'active', reason: str(item?.reason) };
    }
    const entry = this.cachedKey(group, keyId);
    if (entry !== undefined) {
      entry.health = stored.health;
      entry.reason = stored.reason;
      entry.changedAt = this.now();
    }
  }

  /** The operator's switch: `disabled` wins over everything; lifting it leaves the key's health as it is. */
  private async setDisabled(group: string, keyId: string, disabled: boolean): Promise<void> {
    await this.update({
      Key: { pk: `grp#${group}`, sk: `key#${keyId}` },
      UpdateExpression: disabled
        ? 'SET #d = :true, #at = :now ADD #v :one'
        : 'SET #at = :now REMOVE #d ADD #v :one',
      ExpressionAttributeNames: { '#d': 'disabled', '#at': 'statusAt', '#v': 'version' },
      ExpressionAttributeValues: disabled
        ? { ':true': true, ':now': this.now(), ':one': 1 }
        : { ':now': this.now(), ':one': 1 },
    });
    const entry = this.cachedKey(group, keyId);
    if (entry !== undefined) {
      entry.disabled = disabled;
      entry.changedAt = this.now();
    }
  }

  /** The item a conditional write lost to: from the exception (ALL_OLD), else one consistent read. */
  private async itemOnConflict(err: unknown, Key: Item): Promise<Item | undefined> {
    if (!(err instanceof ConditionalCheckFailedException)) throw err;
    if (err.Item !== undefined) return unmarshall(err.Item as Record<string, AttributeValue>);
    const out = await this.doc.send(
      new GetCommand({ TableName: this.options.table, Key, ConsistentRead: true }),
    );
    return out.Item;
  }

  private async update(
    input: Omit<ConstructorParameters<typeof UpdateCommand>[0], 'TableName'>,
  ): Promise<Item | undefined> {
    const out = await this.doc.send(
      new UpdateCommand({
        TableName: this.options.table,
        ReturnValuesOnConditionCheckFailure: input.ConditionExpression === undefined ? undefined : 'ALL_OLD',
        ReturnValues: input.ReturnValues ?? 'ALL_NEW',
        ...input,
      }),
    );
    return out.Attributes;
  }

  /**
   * The group's state, at most `cacheMs` old: the cached copy while it is young enough, else a read
   * (one per instance at a time). Callers start it alongside their write so both cost one round trip.
   */
  private fresh(group: string): Promise<GroupCache> {
    const cache = this.groups.get(group);
    if (cache !== undefined && this.now() - cache.at < this.options.cacheMs) return Promise.resolve(cache);
    let loading = this.loading.get(group);
    if (loading === undefined) {
      loading = this.load(group).finally(() => this.loading.delete(group));
      this.loading.set(group, loading);
    }
    return loading;
  }

  private async load(group: string): Promise<GroupCache> {
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
    let start: Item | undefined;
    do {
      const out = await this.doc.send(
        new QueryCommand({
          TableName: this.options.table,
          KeyConditionExpression: 'pk = :pk',
          ExpressionAttributeValues: { ':pk': `grp#${group}` },
          ExclusiveStartKey: start,
        }),
      );
      for (const item of out.Items ?? []) {
        const sk = str(item.sk) ?? '';
        if (sk.startsWith('key#')) {
          const k = entry(sk.slice(4));
          k.health = str(item.status) === 'invalid' ? 'invalid' : 'active';
          k.reason = str(item.reason);
          k.disabled = item.disabled === true;
        } else if (sk.startsWith('cool#')) {
          const rest = sk.slice(5);
          const hash = rest.indexOf('#');
          const until = num(item.until);
          if (hash > 0 && until !== undefined) {
            entry(rest.slice(0, hash)).cooldowns[rest.slice(hash + 1)] = {
              until,
              cause: (str(item.cause) ?? 'quota') as CooldownCause,
            };
          }
        }
      }
      start = out.LastEvaluatedKey;
    } while (start !== undefined);
    // What this instance wrote while the read was in flight may not be in it: keep that.
    for (const [keyId, mine] of this.groups.get(group)?.keys ?? []) {
      const read = entry(keyId);
      for (const [model, c] of Object.entries(mine.cooldowns)) {
        const other = read.cooldowns[model];
        if (other === undefined || other.until < c.until) read.cooldowns[model] = c;
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
    this.prune();
    return cache;
  }

  /** Drops remembered budgets and windows that no longer matter, so model names can't grow memory. */
  private prune(): void {
    if (this.fullUntil.size + this.windowMinute.size < 1000) return;
    const now = this.now();
    for (const [id, until] of this.fullUntil) if (until <= now) this.fullUntil.delete(id);
    this.windowMinute.clear();
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
        for (const [model, cooldown] of Object.entries(k.cooldowns)) {
          if (cooldown.until > now) updates.push({ kind: 'cooldown', group, keyId, model, cooldown });
        }
      }
    }
    return updates;
  }

  private views(cache: GroupCache, keys: readonly KeyRef[]): KeyView[] {
    return keys.map(({ keyId }) => view(keyId, cache.keys.get(keyId)));
  }

  private cachedKey(group: string, keyId: string): CachedKey | undefined {
    const cache = this.groups.get(group);
    if (cache === undefined) return undefined;
    let k = cache.keys.get(keyId);
    if (k === undefined) {
      k = newKey();
      cache.keys.set(keyId, k);
    }
    return k;
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

/** The window item of a Pacific day; the rpm window length is part of it, so changing it starts afresh. */
function windowSk(day: string, limits: QuotaLimits): string {
  return `day#${day}#w${rpmWindow(limits)}`;
}

function budgetKey(budget: string, model: string): string {
  return `${budget}\u0000${model}`;
}

function clientKey(client: ClientLimit): string {
  return `client\u0000${client.clientId}`;
}

function unavailable(coolingRetryAt: number | undefined, quotaRetryAt: number | undefined): Acquisition {
  const next = soonest({ at: coolingRetryAt, cause: 'cooling' }, { at: quotaRetryAt, cause: 'quota' });
  return { kind: 'unavailable', retryAt: next.at, cause: next.cause };
}
