/** Usage as an operator reads it: per day, by client, key or model (pure, over any {@link UsageSource}). */
import { pacificDay } from './pacific-time.js';
import { daysBefore, type UsageCounts, type UsageRecord, type UsageSource } from './usage-ledger.js';

export type UsageDimension = 'client' | 'key' | 'model';

/** One day's usage of one client, key or model. */
export interface UsageRow extends UsageCounts {
  readonly day: string;
  /** by client: its name, else its id (`-`: requests without a token). */
  readonly client?: string;
  /** by client: its id. */
  readonly clientId?: string;
  /** by key: its id. */
  readonly key?: string;
  /** by model. */
  readonly model?: string;
}

export interface UsageQuery {
  /** How many Pacific days, today included. */
  readonly days: number;
  readonly by: UsageDimension;
  /** Epoch ms: today is its Pacific day. */
  readonly now: number;
}

function groupOf(record: UsageRecord, by: UsageDimension): string {
  if (by === 'key') return record.keyId;
  if (by === 'model') return record.model;
  return record.clientId;
}

/** Rows of one day, summed by the dimension, the busiest first. */
function dayRows(day: string, records: readonly UsageRecord[], by: UsageDimension): UsageRow[] {
  const sums = new Map<string, UsageCounts & { name: string | undefined }>();
  for (const r of records) {
    const id = groupOf(r, by);
    const sum = sums.get(id) ?? { requests: 0, errors: 0, inputTokens: 0, outputTokens: 0, name: undefined };
    sum.requests += r.requests;
    sum.errors += r.errors;
    sum.inputTokens += r.inputTokens;
    sum.outputTokens += r.outputTokens;
    sum.name ??= r.clientName;
    sums.set(id, sum);
  }
  const rows = [...sums].map(([id, { name, ...counts }]): UsageRow => {
    if (by === 'client') return { day, client: name ?? id, clientId: id, ...counts };
    return by === 'key' ? { day, key: id, ...counts } : { day, model: id, ...counts };
  });
  return rows.sort((a, b) => b.requests - a.requests || label(a).localeCompare(label(b)));
}

/** What a row is of: its client, key or model. */
export function label(row: UsageRow): string {
  return row.client ?? row.key ?? row.model ?? '';
}

/**
 * Usage of the last `days` Pacific days (today first), one row per day and client, key or model. Each
 * day is one read of the source (on DynamoDB one Query of that day's partition).
 */
export async function readUsage(source: UsageSource, query: UsageQuery): Promise<UsageRow[]> {
  const today = pacificDay(query.now);
  const days = Array.from({ length: Math.max(0, query.days) }, (_, i) => daysBefore(today, i));
  const records = await Promise.all(days.map((day) => source.read(day)));
  return days.flatMap((day, i) => dayRows(day, records[i]!, query.by));
}
