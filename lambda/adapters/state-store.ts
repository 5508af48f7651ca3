import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { StateConfig } from '../core/config.js';
import type { KeyStateStore } from '../core/key-state.js';
import type { Logger } from '../core/logger.js';
import { DynamoDbKeyStateStore } from './dynamodb-store.js';
import { ensureTable } from './dynamodb-table.js';
import { FallbackKeyStateStore } from './fallback-store.js';
import { MemoryKeyStateStore } from './memory-store.js';

/** The DynamoDB client for the state store: bounded calls, one SDK retry (the fallback is the real one). */
export function stateClient(state: StateConfig, timeoutMs = state.timeout_ms): DynamoDBClient {
  const local = state.endpoint !== undefined;
  return new DynamoDBClient({
    endpoint: state.endpoint,
    region: state.region ?? process.env.AWS_REGION ?? (local ? 'us-east-1' : undefined),
    // Local engines accept any credentials; on AWS the function's role supplies real ones.
    credentials:
      local && process.env.AWS_ACCESS_KEY_ID === undefined
        ? { accessKeyId: 'local', secretAccessKey: 'local' }
        : undefined,
    maxAttempts: 2,
    // throwOnRequestTimeout: without it the handler only warns and the call hangs on.
    requestHandler: { connectionTimeout: timeoutMs, requestTimeout: timeoutMs, throwOnRequestTimeout: true },
  });
}

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
  return new FallbackKeyStateStore(shared, new MemoryKeyStateStore(), {
    timeoutMs: state.timeout_ms,
    retryAfterMs: state.retry_after_ms,
    logger,
  });
}
