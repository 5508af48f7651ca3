import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';

/** Counts the commands a DynamoDB client sends, by name: the SDK's own view of round trips. */
export function countCalls(client: DynamoDBClient): {
  counts: Map<string, number>;
  total(): number;
  reset(): void;
} {
  const counts = new Map<string, number>();
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const name = context.commandName ?? 'unknown';
      counts.set(name, (counts.get(name) ?? 0) + 1);
      return next(args);
    },
    { step: 'initialize', name: 'countCalls' },
  );
  return {
    counts,
    total: () => [...counts.values()].reduce((a, b) => a + b, 0),
    reset: () => counts.clear(),
  };
}
