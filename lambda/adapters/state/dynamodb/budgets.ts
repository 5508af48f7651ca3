import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import { BoundedMap } from '../../../core/bounded-map.js';
import type { ClientLimit, KeyRef, QuotaLimits } from '../../../core/key-state/port.js';
import {
  MINUTE_MS,
  minuteIndex,
  quotaVerdict,
  rpmWindow,
  type WindowCounts,
} from '../../../core/key-state/quota.js';
import { nextPacificMidnight, pacificDay } from '../../../core/pacific-time.js';
import { type Item, num, type StateTable, str, ttlAfter } from './table.js';

/**
 * Quota budgets and client windows in the key-state table, claimed with one conditional counter write
 * each (`count < limit`), so no window ever passes its limit however many instances claim at once.
 * Remembers, per instance, which budgets are full until when, so they are skipped without a call.
 *
 * | pk | sk | holds |
 * |---|---|---|
 * | `quota#<budget>#<model>` | `day#<Pacific day>#w<window ms>` | `d` today, `m` in window `mw`, ttl |
 * | `client#<clientId>` | `min#<minute>` | `c` requests in that minute, ttl |
 */
export class BudgetWindows {
  /**
   * Budgets (and clients) known to be full, until when. Bounded (model names come from clients): one
   * dropped costs a claim DynamoDB refuses, never a wrong grant.
   */
  private readonly fullUntil = new BoundedMap<string, number>(MAX_REMEMBERED);
  /** The window each budget's item was last seen in, to pick the write that will succeed (a hint). */
  private readonly windowMinute = new BoundedMap<string, number>(MAX_REMEMBERED);

  constructor(private readonly table: StateTable) {}

  /** Until when a budget is known to be full, if it is. */
  fullFor(budget: string, model: string, now: number): number | undefined {
    const until = this.fullUntil.get(budgetKey(budget, model));
    return until !== undefined && until > now ? until : undefined;
  }

  markFull(budget: string, model: string, until: number): void {
    this.fullUntil.set(budgetKey(budget, model), until);
  }

  /** Until when a client is known to be over its limit, if it is. */
  clientRefusedUntil(client: ClientLimit, now: number): number | undefined {
    const until = this.fullUntil.get(clientKey(client));
    return until !== undefined && until > now ? until : undefined;
  }

  /** Reads the current windows of the given keys' budgets (one BatchGetItem) and notes which are full. */
  async survey(keys: readonly KeyRef[], model: string, limits: QuotaLimits, now: number): Promise<void> {
    const today = pacificDay(now);
    const budgets = [...new Set(keys.map((k) => k.budget))].filter(
      (b) => this.fullFor(b, model, now) === undefined,
    );
    const byPk = new Map(budgets.map((b) => [`quota#${b}#${model}`, b]));
    for (let i = 0; i < budgets.length; i += 100) {
      const items = await this.table.batchGet(
        [...byPk.keys()].slice(i, i + 100).map((pk) => ({ pk, sk: windowSk(today, limits) })),
      );
      for (const item of items) {
        const budget = byPk.get(str(item.pk) ?? '');
        if (budget === undefined) continue;
        const mw = num(item.mw);
        const verdict = quotaVerdict(limits, windowCounts(item, today, -1), now);
        if (mw !== undefined) this.windowMinute.set(budgetKey(budget, model), mw);
        if (!verdict.ok) this.fullUntil.set(budgetKey(budget, model), verdict.retryAt);
      }
    }
  }

  /** Claims one request of a budget's current windows. Undefined when granted, else when it may be. */
  async claim(ref: KeyRef, model: string, limits: QuotaLimits, now: number): Promise<number | undefined> {
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
          ? await this.table.update({
              Key,
              UpdateExpression: 'SET #ttl = :ttl ADD #d :one, #m :one',
              ConditionExpression: '#mw = :mw AND #m < :rpm AND #d < :rpd',
              ExpressionAttributeNames: names,
              ExpressionAttributeValues: { ':one': 1, ':mw': minute, ':rpm': rpm, ':rpd': rpd, ':ttl': ttl },
            })
          : await this.table.update({
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
        const after = quotaVerdict(limits, windowCounts(out, today, minute), now);
        if (!after.ok) this.fullUntil.set(id, after.retryAt);
        return undefined;
      } catch (err) {
        const current = await this.table.itemOnConflict(err, Key);
        const mw = num(current?.mw);
        if (mw !== undefined) this.windowMinute.set(id, mw);
        const verdict = quotaVerdict(
          limits,
          current === undefined ? undefined : windowCounts(current, today, -1),
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
      this.fullUntil.set(clientKey(client), retryAt);
      return retryAt;
    }
  }
}

/** Most budget×model (and client) entries each of the instance's hints holds. */
const MAX_REMEMBERED = 4096;

/** The window item of a Pacific day; the rpm window length is part of it, so changing it starts afresh. */
export function windowSk(day: string, limits: QuotaLimits): string {
  return `day#${day}#w${rpmWindow(limits)}`;
}

/** The counts a window item holds for `day` (`minute` when it names no window). */
function windowCounts(item: Item | undefined, day: string, minute: number): WindowCounts {
  return {
    day,
    dayCount: num(item?.d) ?? 0,
    minute: num(item?.mw) ?? minute,
    minuteCount: num(item?.m) ?? 0,
  };
}

function budgetKey(budget: string, model: string): string {
  return `${budget}\u0000${model}`;
}

function clientKey(client: ClientLimit): string {
  return `client\u0000${client.clientId}`;
}
