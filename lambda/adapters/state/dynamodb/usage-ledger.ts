import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { Logger } from '../../../core/logger.js';
import {
  daysBefore,
  USAGE_RETENTION_DAYS,
  type UsageEvent,
  type UsageLedger,
  type UsageRecord,
  type UsageSource,
  UsageTally,
} from '../../../core/usage-ledger.js';
import { type Item, num, StateTable, str, type UpdateInput } from './table.js';

/**
 * Usage items, one per Pacific day × client × key × model:
 *
 * | pk | sk | attributes |
 * |---|---|---|
 * | `usage#<YYYY-MM-DD>` | `<clientId>#<keyId>#<model>` | `req`, `err`, `in`, `out` (summed with `ADD`), `name` (the client's), `ttl` |
 *
 * Ids are hash prefixes (`-` for none), never a key or token. One Query reads a day.
 */
export function usageItemKey(day: string, clientId: string, keyId: string, model: string): Item {
  return { pk: usagePartition(day), sk: `${clientId}#${keyId}#${model}` };
}

/** The partition of one day's usage. */
export const usagePartition = (day: string) => `usage#${day}`;

/** TTL (epoch seconds): {@link USAGE_RETENTION_DAYS} after the day ends (its Pacific midnight, to the hour). */
export function usageTtl(day: string): number {
  return Date.parse(`${daysBefore(day, -1)}T08:00:00Z`) / 1000 + USAGE_RETENTION_DAYS * 86_400;
}

/** Adds a record's counts to its item (creating it), and sets the client's name and the TTL. */
export function usageWrite(r: UsageRecord): UpdateInput {
  const named = r.clientName !== undefined;
  return {
    Key: usageItemKey(r.day, r.clientId, r.keyId, r.model),
    UpdateExpression: `ADD #req :req, #err :err, #in :in, #out :out SET #ttl = :ttl${named ? ', #name = :name' : ''}`,
    ExpressionAttributeNames: {
      '#req': 'req',
      '#err': 'err',
      '#in': 'in',
      '#out': 'out',
      '#ttl': 'ttl',
      ...(named && { '#name': 'name' }),
    },
    ExpressionAttributeValues: {
      ':req': r.requests,
      ':err': r.errors,
      ':in': r.inputTokens,
      ':out': r.outputTokens,
      ':ttl': usageTtl(r.day),
      ...(named && { ':name': r.clientName }),
    },
    ReturnValues: 'NONE',
  };
}

/** A usage item as a record; undefined for an item of another shape. */
export function storedUsage(day: string, item: Item): UsageRecord | undefined {
  const sk = str(item.sk);
  const m = sk === undefined ? null : /^([^#]+)#([^#]+)#(.+)$/.exec(sk);
  if (m === null) return undefined;
  return {
    day,
    clientId: m[1]!,
    keyId: m[2]!,
    model: m[3]!,
    clientName: str(item.name),
    requests: num(item.req) ?? 0,
    errors: num(item.err) ?? 0,
    inputTokens: num(item.in) ?? 0,
    outputTokens: num(item.out) ?? 0,
  };
}

/** Usage as the table holds it: one Query per day (what the CLI reads; the proxy never reads usage). */
export class DynamoDbUsageSource implements UsageSource {
  private readonly table: StateTable;

  constructor(client: DynamoDBClient, table: string) {
    this.table = new StateTable(client, table);
  }

  async read(day: string): Promise<UsageRecord[]> {
    const items = await this.table.query(usagePartition(day));
    return items.flatMap((item) => storedUsage(day, item) ?? []);
  }
}

export interface DynamoDbUsageLedgerOptions {
  readonly client: DynamoDBClient;
  readonly table: string;
  /** Where a failed write is reported (it is kept and written with the next flush). */
  readonly logger: Logger;
  /** Counts are written at most this often by requests, and at every {@link DynamoDbUsageLedger.flush}. @default 5000 */
  readonly flushEveryMs?: number;
  /** Clock; injectable for tests. */
  readonly now?: () => number;
  /** Most combinations held unwritten (see {@link UsageTally}). @default 10000 */
  readonly capacity?: number;
  /**
   * How long {@link DynamoDbUsageLedger.flush} waits for its writes: a slow or down DynamoDB must not hold
   * a response (a Lambda invocation ends after it). The writes go on; what fails is kept. @default 1000
   */
  readonly flushWaitMs?: number;
}

/** Writes in flight at once in one flush. */
const PARALLEL_WRITES = 25;

/**
 * Usage shared in the state table. Requests only add to sums in memory; the sums are written off the hot
 * path, one UpdateItem `ADD` per day × client × key × model counted since the last write: when a request
 * ends `flushEveryMs` after the last write, and at {@link flush} (which entries call before an invocation
 * ends). A write that fails keeps its counts for the next flush (bounded by the tally's capacity); nothing
 * here ever fails a request. Read the table with {@link DynamoDbUsageSource}.
 */
export class DynamoDbUsageLedger implements UsageLedger {
  private readonly table: StateTable;
  private readonly tally: UsageTally;
  private readonly now: () => number;
  private readonly everyMs: number;
  private lastWrite: number;
  private readonly writing = new Set<Promise<void>>();

  constructor(private readonly options: DynamoDbUsageLedgerOptions) {
    this.table = new StateTable(options.client, options.table);
    this.tally = new UsageTally(options.capacity);
    this.now = options.now ?? Date.now;
    this.everyMs = options.flushEveryMs ?? 5000;
    this.lastWrite = this.now();
  }

  /** Combinations counted and not yet written (or kept after a failed write). */
  get pending(): number {
    return this.tally.size;
  }

  add(event: UsageEvent): void {
    this.tally.add(event);
    if (this.now() - this.lastWrite >= this.everyMs) void this.write();
  }

  async flush(): Promise<void> {
    void this.write();
    const waited = new Promise<void>((resolve) =>
      setTimeout(resolve, this.options.flushWaitMs ?? 1000).unref(),
    );
    await Promise.race([waited, this.settled()]);
  }

  async close(): Promise<void> {
    void this.write();
    await this.settled();
  }

  private async settled(): Promise<void> {
    while (this.writing.size > 0) await Promise.all(this.writing);
  }

  /** Starts writing every sum gathered so far; resolves (never rejects) when the writes are done. */
  private write(): Promise<void> {
    this.lastWrite = this.now();
    const records = this.tally.drain();
    if (records.length === 0) return Promise.resolve();
    const done = this.writeAll(records);
    this.writing.add(done);
    void done.finally(() => this.writing.delete(done));
    return done;
  }

  private async writeAll(records: readonly UsageRecord[]): Promise<void> {
    let failed = 0;
    let error = 'unknown';
    for (let i = 0; i < records.length; i += PARALLEL_WRITES) {
      if (failed > 0 && failed === i) {
        // Every write so far failed: DynamoDB is down or unreachable. Keep the rest for the next flush.
        for (const r of records.slice(i)) this.tally.merge(r);
        failed += records.length - i;
        break;
      }
      await Promise.all(
        records.slice(i, i + PARALLEL_WRITES).map(async (r) => {
          try {
            await this.table.update(usageWrite(r));
          } catch (err) {
            // Given back to the tally: the next flush writes these counts with whatever came since.
            this.tally.merge(r);
            failed++;
            error = err instanceof Error ? err.name : 'unknown';
          }
        }),
      );
    }
    if (failed > 0) {
      this.options.logger.warn('usage write failed; kept for the next flush', {
        items: failed,
        of: records.length,
        error,
      });
    }
  }
}
