import { afterAll, beforeAll } from 'vitest';
import { DynamoDbKeyStateStore } from '../../lambda/adapters/state/dynamodb/store.js';
import { type DynamoEngine, startDynamoEngine, testClient } from '../support/dynamo-engine.js';
import { keyStateStoreContract } from '../support/store-contract.js';

let engine: DynamoEngine;
beforeAll(async () => {
  engine = await startDynamoEngine();
});
afterAll(async () => {
  await engine.close();
});

keyStateStoreContract(
  'DynamoDbKeyStateStore (real engine)',
  () =>
    new DynamoDbKeyStateStore({
      client: testClient(engine.endpoint),
      table: engine.table,
      cacheMs: 0,
      rotationShards: 1,
    }),
);
