import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { stateWaitAllowanceMs } from '../../../core/config/derived.js';
import type { StateConfig } from '../../../core/config/schema.js';

/**
 * The DynamoDB client for the state store: one SDK retry, calls bounded by the longest a request may wait
 * on DynamoDB (`stateWaitAllowanceMs`). The fallback store decides what counts as too slow (`timeout_ms`,
 * `cold_timeout_ms` for a fresh instance's first calls); the client must not cut a call shorter than that,
 * or a cold connection and a budget claim still waiting for its answer would fail on the client's clock.
 */
export function stateClient(
  state: StateConfig,
  timeoutMs = stateWaitAllowanceMs(state),
  /** 1 for writes that must not be sent twice (an `ADD` that landed but timed out would count twice). */
  maxAttempts = 2,
): DynamoDBClient {
  const local = state.endpoint !== undefined;
  return new DynamoDBClient({
    endpoint: state.endpoint,
    region: state.region ?? process.env.AWS_REGION ?? (local ? 'us-east-1' : undefined),
    // Local engines accept any credentials; on AWS the function's role supplies real ones.
    credentials:
      local && process.env.AWS_ACCESS_KEY_ID === undefined
        ? { accessKeyId: 'local', secretAccessKey: 'local' }
        : undefined,
    maxAttempts,
    // throwOnRequestTimeout: without it the handler only warns and the call hangs on.
    requestHandler: { connectionTimeout: timeoutMs, requestTimeout: timeoutMs, throwOnRequestTimeout: true },
  });
}

/**
 * Calls `listener` whenever DynamoDB answers the client: any HTTP response, errors such as a failed
 * condition included (each SDK attempt is seen; network errors and timeouts are not answers).
 */
export function onAnswer(client: DynamoDBClient, listener: () => void): void {
  client.middlewareStack.add(
    (next) => async (args) => {
      const out = await next(args);
      listener();
      return out;
    },
    // Inside the deserializer: sees the raw response before a service error is thrown from it.
    { step: 'deserialize', priority: 'low', name: 'stateAnswers' },
  );
}
