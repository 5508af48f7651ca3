import { ConditionalCheckFailedException, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand, QueryCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { BudgetWindows } from '../../lambda/adapters/state/dynamodb/budgets.js';
import { DynamoDbKeyStateStore } from '../../lambda/adapters/state/dynamodb/store.js';
import { StateTable } from '../../lambda/adapters/state/dynamodb/table.js';
import { MAX_COOLDOWN_MODELS_PER_KEY } from '../../lambda/core/key-state/key-record.js';

// The store talks through the document client; a mock that missed would hit this closed local port.
const ddb = mockClient(DynamoDBDocumentClient);

describe('Class: DynamoDbKeyStateStore (lost races)', () => {
  beforeEach(() => {
    ddb.reset();
    ddb.on(QueryCommand).resolves({ Items: [] });
  });

  const store = () =>
    new DynamoDbKeyStateStore({
      client: new DynamoDBClient({
        region: 'us-east-1',
        credentials: { accessKeyId: 'x', secretAccessKey: 'x' },
      }),
      table: 't',
      cacheMs: 60_000,
      rotationShards: 1,
    });

  it('resolves a lost cooldown race from the item DynamoDB returns, without another read', async () => {
    // Prepare: the write loses to a longer cooldown, which DynamoDB returns (ALL_OLD)
    const s = store();
    await s.describe('g', ['k']);
    ddb.on(UpdateCommand).rejects(
      new ConditionalCheckFailedException({
        message: 'The conditional request failed',
        $metadata: {},
        Item: { until: { N: '9999999999999' }, cause: { S: 'rpd' } },
      }),
    );

    // Act
    await s.record({
      kind: 'cooldown',
      group: 'g',
      keyId: 'k',
      model: 'm',
      cooldown: { until: 1000, cause: 'rpm' },
    });

    // Assess
    const update = ddb.commandCalls(UpdateCommand)[0]!.args[0].input;
    expect(update.ReturnValuesOnConditionCheckFailure).toBe('ALL_OLD');
    expect(update.ConditionExpression).toBe('attribute_not_exists(#until) OR #until < :until');
    expect(ddb.commandCalls(GetCommand)).toHaveLength(0);
    ddb.on(UpdateCommand).resolves({ Attributes: { pos: 1 } }); // the rotation counter
    const acquired = await s.acquire({
      group: 'g',
      keys: [{ keyId: 'k', budget: 'key:k' }],
      model: 'm',
      now: 5000,
      exclude: new Set(),
    });
    expect(acquired).toEqual({ kind: 'unavailable', retryAt: 9999999999999, cause: 'cooling' });
  });

  it('reads the item once when an engine returns no item with the failure, and adopts it', async () => {
    const s = store();
    await s.describe('g', ['k']);
    ddb.on(UpdateCommand).rejects(new ConditionalCheckFailedException({ message: 'failed', $metadata: {} }));
    ddb.on(GetCommand).resolves({ Item: { status: 'invalid', reason: 'API_KEY_INVALID' } });
    await s.record({ kind: 'invalid', group: 'g', keyId: 'k', reason: 'LEAKED' });
    expect(ddb.commandCalls(GetCommand)).toHaveLength(1);
    expect(ddb.commandCalls(GetCommand)[0]!.args[0].input.ConsistentRead).toBe(true);
    // The instance adopted the stored state: the key is out of its rotation.
    ddb.on(UpdateCommand).resolves({ Attributes: { pos: 1 } });
    const acquired = await s.acquire({
      group: 'g',
      keys: [{ keyId: 'k', budget: 'key:k' }],
      model: 'm',
      now: 1,
      exclude: new Set(),
    });
    expect(acquired).toEqual({ kind: 'unavailable', retryAt: undefined, cause: 'none' });
    expect(s.snapshot()).toEqual([{ kind: 'invalid', group: 'g', keyId: 'k', reason: 'API_KEY_INVALID' }]);
  });

  it('drops a cooldown of its own once it has ended and the table no longer holds it', async () => {
    // Prepare: a cooldown written by this instance, then the table's copy gone (tidied by the health check)
    let now = 1_000;
    const s = new DynamoDbKeyStateStore({
      client: new DynamoDBClient({
        region: 'us-east-1',
        credentials: { accessKeyId: 'x', secretAccessKey: 'x' },
      }),
      table: 't',
      cacheMs: 0,
      rotationShards: 1,
      now: () => now,
    });
    await s.describe('g', ['k']);
    ddb.on(UpdateCommand).resolves({});
    await s.record({
      kind: 'cooldown',
      group: 'g',
      keyId: 'k',
      model: 'm',
      cooldown: { until: 2_000, cause: 'rpm' },
    });
    expect((await s.describe('g', ['k']))[0]!.cooldowns).toEqual(
      new Map([['m', { until: 2_000, cause: 'rpm' }]]),
    );

    // Act: past its end, the next reads find no item
    now = 3_000;
    await s.describe('g', ['k']);
    const [view] = await s.describe('g', ['k']);

    // Assess
    expect(view!.cooldowns).toEqual(new Map());
  });
});

describe('Class: DynamoDbKeyStateStore (bounded per-model state)', () => {
  beforeEach(() => {
    ddb.reset();
  });

  const client = () =>
    new DynamoDBClient({ region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' } });

  it('holds a bounded number of cooldowns per key, however many models the table has', async () => {
    // Prepare: the table holds 10,000 cooldowns of one key, one per model
    ddb.on(QueryCommand).resolves({
      Items: Array.from({ length: 10_000 }, (_, i) => ({
        pk: 'grp#g',
        sk: `cool#k#model-${i}`,
        until: 9_000_000_000_000,
        cause: 'rpm',
      })),
    });
    const s = new DynamoDbKeyStateStore({ client: client(), table: 't', cacheMs: 60_000, rotationShards: 1 });

    // Act
    const [view] = await s.describe('g', ['k']);

    // Assess: the most recently read ones, up to the bound
    expect(view!.cooldowns.size).toBe(MAX_COOLDOWN_MODELS_PER_KEY);
    expect(view!.cooldowns.has('model-9999')).toBe(true);
  });

  it('remembers full budgets for a bounded number of models', () => {
    // Prepare
    const budgets = new BudgetWindows(new StateTable(client(), 't'));

    // Act: 10,000 models found full
    const held = (
      budgets as unknown as { fullUntil: Map<string, { until: number; metric: string; limit: number }> }
    ).fullUntil;
    for (let i = 0; i < 10_000; i++)
      held.set(`key:k\u0000model-${i}`, { until: 9_000_000_000_000, metric: 'rpm', limit: 1 });

    // Assess: bounded; the newest are still known, the oldest forgotten (a claim would find them full again)
    expect(held.size).toBeLessThanOrEqual(4096);
    expect(budgets.fullFor('key:k', 'model-9999', 0, { rpm: 1 })?.until).toBe(9_000_000_000_000);
    expect(budgets.fullFor('key:k', 'model-0', 0, { rpm: 1 })).toBeUndefined();
  });
});
