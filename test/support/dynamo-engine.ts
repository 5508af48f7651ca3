import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { ensureTable } from '../../lambda/adapters/dynamodb-table.js';

/** A real DynamoDB engine for tests: dynalite in process, or any engine at DYNAMODB_ENDPOINT. */
export interface DynamoEngine {
  readonly endpoint: string;
  readonly table: string;
  readonly external: boolean;
  /** Stops the engine (in-process only): calls fail as if DynamoDB were unreachable. */
  stop(): Promise<void>;
  /** Starts it again on the same port, with its data kept. */
  start(): Promise<void>;
  close(): Promise<void>;
}

const credentials = { accessKeyId: 'local', secretAccessKey: 'local' };

export function testClient(endpoint: string): DynamoDBClient {
  return new DynamoDBClient({ endpoint, region: 'us-east-1', credentials, maxAttempts: 1 });
}

export async function startDynamoEngine(
  table = `t${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`,
) {
  const externalEndpoint = process.env.DYNAMODB_ENDPOINT;
  if (externalEndpoint !== undefined && externalEndpoint !== '') {
    await ensureTable(testClient(externalEndpoint), table);
    const engine: DynamoEngine = {
      endpoint: externalEndpoint,
      table,
      external: true,
      stop: async () => {
        throw new Error('cannot stop an external engine');
      },
      start: async () => {},
      close: async () => {},
    };
    return engine;
  }
  const { default: dynalite } = await import('dynalite');
  // One in-memory store survives stop/start: dynalite keeps its data on the instance.
  const server = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = server.address().port;
  const endpoint = `http://127.0.0.1:${port}`;
  await ensureTable(testClient(endpoint), table);
  let running = true;
  const engine: DynamoEngine = {
    endpoint,
    table,
    external: false,
    async stop() {
      if (!running) return;
      running = false;
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
    async start() {
      if (running) return;
      await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
      running = true;
    },
    async close() {
      await engine.stop();
    },
  };
  return engine;
}
