import {
  CreateTableCommand,
  DescribeTableCommand,
  type DynamoDBClient,
  ResourceInUseException,
  UpdateTimeToLiveCommand,
  waitUntilTableExists,
} from '@aws-sdk/client-dynamodb';

/** The attribute DynamoDB's TTL reads (epoch seconds). TTL only tidies; conditions hold the truth. */
export const TTL_ATTRIBUTE = 'ttl';

/**
 * Creates the key-state table (string `pk`/`sk`, on-demand, TTL on `ttl`) unless it exists. For local
 * engines and `state.create_table`; on AWS the CDK stack owns the table.
 */
export async function ensureTable(client: DynamoDBClient, table: string): Promise<'created' | 'exists'> {
  try {
    await client.send(new DescribeTableCommand({ TableName: table }));
    return 'exists';
  } catch (err) {
    if ((err as { name?: string }).name !== 'ResourceNotFoundException') throw err;
  }
  try {
    await client.send(
      new CreateTableCommand({
        TableName: table,
        BillingMode: 'PAY_PER_REQUEST',
        AttributeDefinitions: [
          { AttributeName: 'pk', AttributeType: 'S' },
          { AttributeName: 'sk', AttributeType: 'S' },
        ],
        KeySchema: [
          { AttributeName: 'pk', KeyType: 'HASH' },
          { AttributeName: 'sk', KeyType: 'RANGE' },
        ],
      }),
    );
  } catch (err) {
    if (err instanceof ResourceInUseException) return 'exists';
    throw err;
  }
  await waitUntilTableExists({ client, maxWaitTime: 60, minDelay: 1, maxDelay: 2 }, { TableName: table });
  try {
    await client.send(
      new UpdateTimeToLiveCommand({
        TableName: table,
        TimeToLiveSpecification: { AttributeName: TTL_ATTRIBUTE, Enabled: true },
      }),
    );
  } catch {
    // Some local engines (dynalite) don't implement TTL; items then simply stay, which is harmless.
  }
  return 'created';
}
