import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import { BoundedMap } from '../../../core/bounded-map.js';
import type {
  BudgetClaim,
  BudgetMetric,
  ClientLimit,
  KeyRef,
  QuotaLimits,
} from '../../../core/key-state/port.js';
import {
  MINUTE_MS,
  minuteIndex,
  type QuotaVerdict,
  quotaVerdict,
  rpmWindow,
  type WindowCounts,
} from '../../../core/key-state/quota.js';
import { budgetModelKey } from '../../../core/key-state/quota-hold.js';
import { nextPacificMidnight, pacificDay } from '../../../core/pacific-time.js';
import { type Item, num, type StateTable, str, ttlAfter } from './table.js';

/**
 * Quota budgets and client windows in the key-state table, claimed with one conditional counter write
 * each (`count < limit`), so no window ever passes its limit however many instances claim at once.
 * Remembers, per instance, which budgets are full until when, so they are skipped without a call.
 *
 * | pk | sk | holds |
 * |---|---|---|
 * | `quota#<budget>#<model>` | `day#<Pacific day>#w<window ms>` | `d` today; `m<W>` requests and `t<W>` input tokens in window `W` (the current one and the one before it); ttl |
 * | `client#<clientId>` | `min#<minute>` | `c` requests in that minute, ttl |
 */
export class BudgetWindows {
  /**
   * Budgets (and clients) known to be full, until when. Bounded (model names come from clients): one
   * dropped costs a claim DynamoDB refuses, never a wrong grant.
   */
  private readonly fullUntil = new BoundedMap<string, Full>(MAX_REMEMBERED);
  /**
   * The counts each budget's item was last seen with: its tokens let a request too large for what is left
   * skip the budget without a call (a hint).
   */
  private readonly seen = new BoundedMap<string, WindowCounts>(MAX_REMEMBERED);
  /** Tidying writes in flight (off the request path). */
  private readonly tidying = new Set<Promise<void>>();

  constructor(private readonly table: StateTable) {}

  /**
   * Until when (and by which limit) a budget is known to be full under `limits`, if it is: a budget found
   * full under a limit is not full under a larger one (a configured limit over a learned one, an edit).
   */
  fullFor(budget: string, model: string, now: number, limits: QuotaLimits): Full | undefined {
    const full = this.fullUntil.get(budgetModelKey(budget, model));
    if (full === undefined || full.until <= now) return undefined;
    if (full.metric === undefined) return full;
    const limit = limits[full.metric];
    return limit !== undefined && limit <= full.limit ? full : undefined;
  }

  private markFull(id: string, limits: QuotaLimits, until: number, metric: BudgetMetric): void {
    this.fullUntil.set(id, { until, metric, limit: limits[metric] ?? 0 });
  }

  /** Until when a client is known to be over its limit, if it is. */
  clientRefusedUntil(client: ClientLimit, now: number): number | undefined {
    const full = this.fullUntil.get(clientKey(client));
    return full !== undefined && full.until > now ? full.until : undefined;
  }

  /**
   * Whether a request of `tokens` fits the budget's window as this instance last saw it: a hint (counts
   * only grow within a window but for refunds), so a budget whose tokens are spent is skipped without a
   * call. The conditional write decides.
   */
  hint(budget: string, model: string, limits: QuotaLimits, now: number, tokens: number): QuotaVerdict {
    if (limits.tpm === undefined || tokens === 0) return { ok: true };
    return quotaVerdict(limits, this.seen.get(budgetModelKey(budget, model)), now, tokens);
  }

  /** Reads the current windows of the given keys' budgets (one BatchGetItem) and notes which are full. */
  async survey(
    keys: readonly KeyRef[],
    model: string,
    limitsOf: (ref: KeyRef) => QuotaLimits | undefined,
    now: number,
  ): Promise<void> {
    const today = pacificDay(now);
    const byPk = new Map<string, { budget: string; limits: QuotaLimits }>();
    for (const k of keys) {
      const limits = limitsOf(k);
      if (limits === undefined || this.fullFor(k.budget, model, now, limits) !== undefined) continue;
      byPk.set(`quota#${k.budget}#${model}`, { budget: k.budget, limits });
    }
    const pks = [...byPk.keys()];
    for (let i = 0; i < pks.length; i += 100) {
      const items = await this.table.batchGet(
        pks.slice(i, i + 100).map((pk) => ({ pk, sk: windowSk(today, byPk.get(pk)!.limits) })),
      );
      for (const item of items) {
        const found = byPk.get(str(item.pk) ?? '');
        if (found === undefined) continue;
        const id = budgetModelKey(found.budget, model);
        const counts = windowCounts(item, today, minuteIndex(now, rpmWindow(found.limits)));
        this.seen.set(id, counts);
        const verdict = quotaVerdict(found.limits, counts, now);
        if (!verdict.ok) this.markFull(id, found.limits, verdict.retryAt, verdict.metric);
      }
    }
  }

  /**
   * Claims one request, and `tokens` input tokens, of a budget's current windows in one conditional
   * write. The claim when granted, else when (and by which limit) it may be.
   */
  async claim(
    ref: KeyRef,
    model: string,
    limits: QuotaLimits,
    now: number,
    tokens = 0,
  ): Promise<{ granted: BudgetClaim } | { retryAt: number; metric: BudgetMetric | undefined }> {
    const id = budgetModelKey(ref.budget, model);
    const today = pacificDay(now);
    const windowMs = rpmWindow(limits);
    const minute = minuteIndex(now, windowMs);
    // A budget is the project's (or key's) across every group: Gemini counts per project, not per group.
    const Key = { pk: `quota#${ref.budget}#${model}`, sk: windowSk(today, limits) };
    const rpd = limits.rpd ?? Number.MAX_SAFE_INTEGER;
    const rpm = limits.rpm ?? Number.MAX_SAFE_INTEGER;
    // The tokens already in the window may be at most this for the request to fit.
    const tmax = limits.tpm === undefined ? Number.MAX_SAFE_INTEGER : limits.tpm - tokens;
    const ttl = ttlAfter(nextPacificMidnight(now));
    // The window's counts live under names of their own (`m<window>`, `t<window>`): every claim is the same
    // conditional ADD, so no instance's claim can lose to another's start of a new window. Windows two and
    // three back are dropped in passing; the one just before stays, for claims still on their way from it
    // (which must find its counts, not an empty window) and for its reconciliations.
    const names = {
      '#d': 'd',
      '#m': `m${minute}`,
      '#t': `t${minute}`,
      '#m1': `m${minute - 2}`,
      '#t1': `t${minute - 2}`,
      '#m2': `m${minute - 3}`,
      '#t2': `t${minute - 3}`,
      '#ttl': 'ttl',
    };
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const out = await this.table.update({
          Key,
          UpdateExpression: 'SET #ttl = :ttl REMOVE #m1, #t1, #m2, #t2 ADD #d :one, #m :one, #t :tok',
          ConditionExpression:
            '(attribute_not_exists(#d) OR #d < :rpd) AND (attribute_not_exists(#m) OR #m < :rpm) AND ' +
            '(attribute_not_exists(#t) OR #t <= :tmax)',
          ExpressionAttributeNames: names,
          ExpressionAttributeValues: {
            ':one': 1,
            ':tok': tokens,
            ':rpm': rpm,
            ':rpd': rpd,
            ':tmax': tmax,
            ':ttl': ttl,
          },
        });
        const counts = windowCounts(out, today, minute);
        this.seen.set(id, counts);
        this.dropStaleWindows(Key, out, minute);
        // Took the last unit: skip this budget without a call until its window opens again.
        const after = quotaVerdict(limits, counts, now);
        if (!after.ok) this.markFull(id, limits, after.retryAt, after.metric);
        return { granted: { budget: ref.budget, window: minute, windowMs, tokens } };
      } catch (err) {
        const current = await this.table.itemOnConflict(err, Key);
        const counts = current === undefined ? undefined : windowCounts(current, today, minute);
        if (counts !== undefined) this.seen.set(id, counts);
        const verdict = quotaVerdict(limits, counts, now, tokens);
        if (!verdict.ok) {
          // Full for any request (not merely for one this large): skip it without a call meanwhile.
          if (verdict.metric !== 'tpm') this.markFull(id, limits, verdict.retryAt, verdict.metric);
          return { retryAt: verdict.retryAt, metric: verdict.metric };
        }
        // The item read after the refusal has room again (a refund came in between, on an engine that
        // does not return the refusing item): claim once more.
      }
    }
    return { retryAt: (minute + 1) * windowMs, metric: undefined };
  }

  /**
   * Removes, off the request's path, counts of windows older than the one before `minute` that the claim
   * did not drop itself (traffic with gaps of several windows): the item stays small, and so do its writes.
   */
  private dropStaleWindows(Key: Item, item: Item | undefined, minute: number): void {
    const stale = Object.keys(item ?? {}).filter(
      (n) => /^[mt]\d+$/.test(n) && Number(n.slice(1)) < minute - 1,
    );
    if (stale.length === 0) return;
    const names = Object.fromEntries(stale.map((n, i) => [`#s${i}`, n]));
    const tidy = this.table
      .update({
        Key,
        UpdateExpression: `REMOVE ${Object.keys(names).join(', ')}`,
        ExpressionAttributeNames: names,
        ReturnValues: 'NONE',
      })
      .then(
        () => undefined,
        () => undefined,
      );
    this.tidying.add(tidy);
    void tidy.finally(() => this.tidying.delete(tidy));
  }

  /** Resolves once the tidying writes started so far have ended (the store's flush waits for them). */
  async settle(): Promise<void> {
    await Promise.all([...this.tidying]);
  }

  /**
   * Charges (or refunds) a claim's input tokens to the window it was made in, if that window is still the
   * budget's current one: once it has passed, the difference no longer matters.
   */
  async reconcile(model: string, claim: BudgetClaim, delta: number): Promise<void> {
    if (delta === 0) return;
    const start = claim.window * claim.windowMs;
    const Key = {
      pk: `quota#${claim.budget}#${model}`,
      sk: windowSk(pacificDay(start), { windowMs: claim.windowMs }),
    };
    try {
      const out = await this.table.update({
        Key,
        UpdateExpression: 'ADD #t :delta',
        // Still there: the window is current or the one before (claims drop those further back); and a
        // refund never takes the window below zero.
        ConditionExpression: 'attribute_exists(#t) AND #t >= :floor',
        ExpressionAttributeNames: { '#t': `t${claim.window}` },
        ExpressionAttributeValues: { ':delta': delta, ':floor': Math.max(0, -delta) },
      });
      this.seen.set(budgetModelKey(claim.budget, model), windowCounts(out, pacificDay(start), claim.window));
    } catch (err) {
      // The window has moved on (or the item expired): nothing left to reconcile.
      if (!(err instanceof ConditionalCheckFailedException)) throw err;
    }
  }

  /** Counts a request in the client's minute window; undefined when allowed, else when it may be. */
  async claimClient(client: ClientLimit, now: number): Promise<number | undefined> {
    const minute = minuteIndex(now);
    try {
      await this.table.update({
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
      this.fullUntil.set(clientKey(client), { until: retryAt, metric: undefined, limit: client.rpm });
      return retryAt;
    }
  }
}

/** A budget (or client) known to be full until `until`, by `metric`. */
export interface Full {
  readonly until: number;
  readonly metric: BudgetMetric | undefined;
  /** The limit it was full under. */
  readonly limit: number;
}

/** Most budget×model (and client) entries each of the instance's hints holds. */
const MAX_REMEMBERED = 4096;

/** The window item of a Pacific day; the rpm window length is part of it, so changing it starts afresh. */
export function windowSk(day: string, limits: QuotaLimits): string {
  return `day#${day}#w${rpmWindow(limits)}`;
}

/** The counts a budget's day item holds for `day` and its window `minute`. */
function windowCounts(item: Item | undefined, day: string, minute: number): WindowCounts {
  return {
    day,
    dayCount: num(item?.d) ?? 0,
    minute,
    minuteCount: num(item?.[`m${minute}`]) ?? 0,
    minuteTokens: num(item?.[`t${minute}`]) ?? 0,
  };
}

function clientKey(client: ClientLimit): string {
  return `client\u0000${client.clientId}`;
}
