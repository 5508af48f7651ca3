import {
  type AttributeValue,
  ConditionalCheckFailedException,
  type DynamoDBClient,
} from '@aws-sdk/client-dynamodb';
import {
  BatchGetCommand,
  DeleteCommand,
  DynamoDBDocumentClient,
  GetCommand,
  QueryCommand,
  type QueryCommandInput,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { unmarshall } from '@aws-sdk/util-dynamodb';

/** An item as the document client reads and writes it. */
export type Item = Record<string, unknown>;
/** An UpdateItem call on the table, without the table's name. */
export type UpdateInput = Omit<ConstructorParameters<typeof UpdateCommand>[0], 'TableName'>;
/** A conditional DeleteItem call on the table, without the table's name. */
export type DeleteInput = Omit<ConstructorParameters<typeof DeleteCommand>[0], 'TableName'> & {
  readonly ConditionExpression: string;
};

/** TTL (epoch seconds) a day after an item stops mattering: TTL only tidies, conditions decide. */
export const ttlAfter = (epochMs: number) => Math.ceil(epochMs / 1000) + 86_400;
/** A number attribute, or undefined when the item holds something else there (or nothing). */
export const num = (v: unknown): number | undefined => (typeof v === 'number' ? v : undefined);
/** A string attribute, or undefined when the item holds something else there (or nothing). */
export const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

/**
 * The key-state table, as the stores use it: conditional updates that report the item they lost to,
 * queries, batch reads. Every call is one DynamoDB round trip, except a lost race on an engine that does
 * not return the item (then one consistent read more).
 */
export class StateTable {
  private readonly doc: DynamoDBDocumentClient;

  constructor(
    client: DynamoDBClient,
    readonly name: string,
  ) {
    this.doc = DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
  }

  /** UpdateItem; conditional ones ask for the stored item on failure (ALL_OLD). Returns the new item. */
  async update(input: UpdateInput): Promise<Item | undefined> {
    const out = await this.doc.send(
      new UpdateCommand({
        TableName: this.name,
        ReturnValuesOnConditionCheckFailure: input.ConditionExpression === undefined ? undefined : 'ALL_OLD',
        ReturnValues: input.ReturnValues ?? 'ALL_NEW',
        ...input,
      }),
    );
    return out.Attributes;
  }

  /** Deletes an item if its condition holds; false when it didn't (someone changed it meanwhile). */
  async deleteIf(input: DeleteInput): Promise<boolean> {
    try {
      await this.doc.send(new DeleteCommand({ TableName: this.name, ...input }));
      return true;
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException) return false;
      throw err;
    }
  }

  /** The item a conditional write lost to: from the exception (ALL_OLD), else one consistent read. */
  async itemOnConflict(err: unknown, Key: Item): Promise<Item | undefined> {
    if (!(err instanceof ConditionalCheckFailedException)) throw err;
    if (err.Item !== undefined) return unmarshall(err.Item as Record<string, AttributeValue>);
    const out = await this.doc.send(new GetCommand({ TableName: this.name, Key, ConsistentRead: true }));
    return out.Item;
  }

  /** Every item of a partition (all pages). */
  async query(pk: string): Promise<Item[]> {
    const items: Item[] = [];
    let start: QueryCommandInput['ExclusiveStartKey'];
    do {
      const out = await this.doc.send(
        new QueryCommand({
          TableName: this.name,
          KeyConditionExpression: 'pk = :pk',
          ExpressionAttributeValues: { ':pk': pk },
          ExclusiveStartKey: start,
        }),
      );
      items.push(...(out.Items ?? []));
      start = out.LastEvaluatedKey;
    } while (start !== undefined);
    return items;
  }

  /** Up to 100 items by key in one call (what the engine could not return is simply missing). */
  async batchGet(keys: Item[]): Promise<Item[]> {
    const out = await this.doc.send(new BatchGetCommand({ RequestItems: { [this.name]: { Keys: keys } } }));
    return out.Responses?.[this.name] ?? [];
  }
}
