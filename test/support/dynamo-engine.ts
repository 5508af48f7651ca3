import net from 'node:net';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { ensureTable } from '../../lambda/adapters/state/dynamodb/ensure-table.js';

/**
 * A real DynamoDB engine for tests: dynalite in process, or any engine at DYNAMODB_ENDPOINT (the same
 * tests then run against it). Clients reach it through a TCP relay on 127.0.0.1 that a test can cut, as
 * an outage would, and restore, with the engine's data intact.
 */
export interface DynamoEngine {
  /** The relay's endpoint: what stores under test use. */
  readonly endpoint: string;
  readonly table: string;
  /** DynamoDB becomes unreachable: connections refused, open ones reset. */
  stop(): Promise<void>;
  /** DynamoDB hangs: connections are accepted and never answered. */
  stall(): Promise<void>;
  /**
   * DynamoDB is slow, as a just-started engine or a cold connection is: every answer that comes back
   * within the next `forMs` is held back a random `minMs`–`maxMs` (in order, per connection).
   */
  slow(minMs: number, maxMs: number, forMs: number): void;
  /** Reachable again (after stop or stall), data kept; ends `slow` too. */
  start(): Promise<void>;
  close(): Promise<void>;
}

const credentials = { accessKeyId: 'local', secretAccessKey: 'local' };

export function testClient(endpoint: string): DynamoDBClient {
  return new DynamoDBClient({ endpoint, region: 'us-east-1', credentials, maxAttempts: 1 });
}

/** Forwards 127.0.0.1:<port> to a target; `cut` refuses and resets, `restore` listens again on the same port. */
async function relay(targetHost: string, targetPort: number) {
  const sockets = new Set<net.Socket>();
  let stalled = false;
  const slowness = { until: 0, minMs: 0, maxMs: 0 };
  const makeServer = () =>
    net.createServer((client) => {
      sockets.add(client);
      client.on('close', () => sockets.delete(client));
      client.on('error', () => client.destroy());
      if (stalled) return; // accepted, never answered
      const upstream = net.connect(targetPort, targetHost);
      for (const s of [client, upstream]) {
        sockets.add(s);
        s.on('close', () => sockets.delete(s));
        s.on('error', () => {
          client.destroy();
          upstream.destroy();
        });
      }
      client.pipe(upstream);
      // Answers go back as they come, unless the engine is slow: then each is held back, in order.
      let releaseAt = 0;
      upstream.on('data', (chunk: Buffer) => {
        const now = Date.now();
        const delay =
          now < slowness.until ? slowness.minMs + Math.random() * (slowness.maxMs - slowness.minMs) : 0;
        releaseAt = Math.max(releaseAt, now + delay);
        if (releaseAt <= now) client.write(chunk);
        else setTimeout(() => client.destroyed || client.write(chunk), releaseAt - now);
      });
      upstream.on('end', () => {
        setTimeout(() => client.end(), Math.max(0, releaseAt - Date.now()));
      });
    });
  let server = makeServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  let open = true;
  return {
    port,
    async cut() {
      if (!open) return;
      open = false;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sockets) s.destroy();
      await closed;
    },
    async stall() {
      stalled = true;
      for (const s of sockets) s.destroy();
    },
    slow(minMs: number, maxMs: number, forMs: number) {
      Object.assign(slowness, { until: Date.now() + forMs, minMs, maxMs });
    },
    async restore() {
      slowness.until = 0;
      if (stalled) {
        stalled = false;
        for (const s of sockets) s.destroy();
      }
      if (open) return;
      server = makeServer();
      await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
      open = true;
    },
  };
}

export async function startDynamoEngine(
  table = `t${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`,
): Promise<DynamoEngine> {
  const external = process.env.DYNAMODB_ENDPOINT;
  let target: URL;
  let closeEngine = async () => {};
  if (external !== undefined && external !== '') {
    target = new URL(external);
  } else {
    const { default: dynalite } = await import('dynalite');
    const server = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    target = new URL(`http://127.0.0.1:${server.address().port}`);
    // Requests dynalite is still working on: closing its database under one makes it throw (uncaught).
    let working = 0;
    server.on('request', (_req, res) => {
      working++;
      // Done when dynalite answers (its writes are made by then), whether or not the client is still there.
      const end = res.end.bind(res);
      res.end = ((...args: Parameters<typeof res.end>) => {
        working--;
        return end(...args);
      }) as typeof res.end;
    });
    closeEngine = async () => {
      for (let waited = 0; working > 0 && waited < 5000; waited += 20) {
        await new Promise((r) => setTimeout(r, 20));
      }
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    };
  }
  const link = await relay(target.hostname, Number(target.port));
  const endpoint = `http://127.0.0.1:${link.port}`;
  await ensureTable(testClient(endpoint), table);
  return {
    endpoint,
    table,
    stop: () => link.cut(),
    stall: () => link.stall(),
    slow: (minMs, maxMs, forMs) => link.slow(minMs, maxMs, forMs),
    start: () => link.restore(),
    async close() {
      await link.cut();
      await closeEngine();
    },
  };
}
