import type { StateConfig } from '../../core/config/schema.js';
import type { KeyStateStore } from '../../core/key-state/port.js';
import type { Logger } from '../../core/logger.js';
import type { UsageLedger } from '../../core/usage-ledger.js';
import { onAnswer, stateClient } from './dynamodb/client.js';
import { ensureTable } from './dynamodb/ensure-table.js';
import { DynamoDbKeyStateStore } from './dynamodb/store.js';
import { DynamoDbUsageLedger } from './dynamodb/usage-ledger.js';
import { FallbackKeyStateStore } from './fallback-store.js';
import { MemoryKeyStateStore } from './memory-store.js';
import { MemoryUsageLedger } from './memory-usage-ledger.js';

/**
 * Builds the key-state store the config names: in-memory, or DynamoDB behind a fallback to local state.
 * Creates the table first when `state.create_table` is set.
 */
export async function createStateStore(state: StateConfig, logger: Logger): Promise<KeyStateStore> {
  if (state.store === 'memory') return new MemoryKeyStateStore();
  const client = stateClient(state);
  if (state.create_table) {
    // Creating a table takes seconds, not the hot path's milliseconds.
    const result = await ensureTable(stateClient(state, 10_000), state.table);
    logger.info('state table ready', { table: state.table, result });
  }
  const shared = new DynamoDbKeyStateStore({
    client,
    table: state.table,
    cacheMs: state.cache_ms,
    rotationShards: state.rotation_shards,
  });
  const store = new FallbackKeyStateStore(shared, new MemoryKeyStateStore(), {
    timeoutMs: state.timeout_ms,
    coldTimeoutMs: state.cold_timeout_ms,
    outageFailures: state.outage_failures,
    onOutage: state.on_outage,
    retryAfterMs: state.retry_after_ms,
    logger,
    // The DynamoDB store answers some calls from its cache: only DynamoDB's own answers show it is up.
    answers: 'reported',
  });
  onAnswer(client, () => store.heard());
  return store;
}

/**
 * Builds the usage ledger beside the store the config names: in memory, or in the same DynamoDB table
 * (its own client: usage writes are off the hot path and must not count towards the store's outage
 * detection). Create the store first: it creates the table where `state.create_table` is set.
 */
export function createUsageLedger(state: StateConfig, logger: Logger): UsageLedger {
  if (state.store === 'memory') return new MemoryUsageLedger();
  // One attempt per write: a usage ADD that landed but timed out must not be sent again (it is kept and
  // written with the next flush instead), and one call's bound, not a claim's allowance.
  const client = stateClient(state, Math.max(state.timeout_ms, state.cold_timeout_ms), 1);
  return new DynamoDbUsageLedger({ client, table: state.table, logger, flushWaitMs: state.timeout_ms * 2 });
}
