/** Where the CLI reads usage: the shared table's usage items (`usage#<day>`), when the target has a table. */
import { DynamoDbUsageSource } from '../adapters/state/dynamodb/usage-ledger.js';
import type { UsageSource } from '../core/usage-ledger.js';
import { readUsage, type UsageDimension, type UsageRow } from '../core/usage-rows.js';
import type { Target } from './target.js';

/** The target's usage, or undefined when it keeps none the CLI can read (a local config on `store: memory`). */
export async function usageSource(target: Target): Promise<UsageSource | undefined> {
  const table = await target.state();
  return table === undefined ? undefined : new DynamoDbUsageSource(table.access.client, table.access.table);
}

/** Usage rows by one dimension over `days` Pacific days, or undefined without a readable source. */
export async function usageRows(
  target: Target,
  by: UsageDimension,
  days: number,
  now: number,
): Promise<UsageRow[] | undefined> {
  const source = await usageSource(target);
  return source === undefined ? undefined : readUsage(source, { days, by, now });
}
