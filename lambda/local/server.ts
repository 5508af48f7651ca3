import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';
import { loadConfig } from '../adapters/config-loader.js';
import { CoalescingStdout, JsonLogger, parseLogLevel } from '../adapters/logger.js';
import { createStateStore } from '../adapters/state-store.js';
import { NodeUpstreamClient } from '../adapters/upstream-http.js';
import { ConfigError, type ProxyConfig } from '../core/config.js';
import type { ProxyResponse, UpstreamClient } from '../core/http.js';
import type { KeyStateStore } from '../core/key-state.js';
import type { Logger } from '../core/logger.js';
import type { MetricsSink } from '../core/metrics.js';
import { GeminiProxy } from '../core/proxy.js';

export interface LocalServerOptions {
  readonly config: ProxyConfig;
  readonly logger: Logger;
  readonly store?: KeyStateStore;
  readonly upstream?: UpstreamClient;
  readonly now?: () => number;
  readonly metrics?: MetricsSink;
}

export interface RunningServer {
  readonly url: string;
  readonly proxy: GeminiProxy;
  readonly server: http.Server;
  /** Stops accepting, lets in-flight requests finish (up to `graceMs`), then closes everything. */
  close(graceMs?: number): Promise<void>;
}

/** Resolves when the response can take more data or has closed; leaves no listener behind. */
function drainOrClose(res: http.ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

/** Writes a core response to a node:http response, honouring backpressure; never buffers a stream. */
async function writeResponse(res: http.ServerResponse, response: ProxyResponse): Promise<void> {
  res.writeHead(response.status, response.headers);
  const { body } = response;
  if (typeof body === 'string' || body instanceof Uint8Array) {
    res.end(body);
    return;
  }
  for await (const chunk of body) {
    if (res.destroyed) break;
    if (!res.write(chunk)) await drainOrClose(res);
  }
  res.end();
}

/** Starts the proxy on node:http: the same core the Lambda handler wraps. */
export async function startLocalServer(options: LocalServerOptions): Promise<RunningServer> {
  const { config, logger } = options;
  const upstream = options.upstream ?? new NodeUpstreamClient();
  const store = options.store ?? (await createStateStore(config.state, logger));
  const proxy = new GeminiProxy({
    config,
    logger,
    store,
    upstream,
    now: options.now,
    metrics: options.metrics,
  });

  const server = http.createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
    const controller = new AbortController();
    // A client that goes away before the answer is complete aborts the upstream call.
    res.once('close', () => {
      if (!res.writableFinished) controller.abort();
    });
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const request = {
      method: req.method ?? 'GET',
      path: q === -1 ? url : url.slice(0, q),
      query: q === -1 ? '' : url.slice(q + 1),
      headers: req.headers,
      body: req,
      requestId: randomUUID(),
      signal: controller.signal,
    };
    proxy
      .handle(request)
      .then((response) => writeResponse(res, response))
      .catch((err: unknown) => {
        logger.warn('response aborted', {
          requestId: request.requestId,
          error: err instanceof Error ? err.name : 'unknown',
        });
        res.destroy();
      });
  });
  server.listen(config.server.port, config.server.host);
  await once(server, 'listening');
  const { address, port } = server.address() as AddressInfo;
  const host = address.includes(':') ? `[${address}]` : address;

  return {
    url: `http://${host}:${port}`,
    proxy,
    server,
    async close(graceMs = 10_000) {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      // Keep-alive connections go as soon as their in-flight request is answered; stragglers at graceMs.
      const sweep = setInterval(() => server.closeIdleConnections(), 50);
      server.closeIdleConnections();
      const timer = setTimeout(() => server.closeAllConnections(), graceMs);
      await closed;
      clearInterval(sweep);
      clearTimeout(timer);
      await proxy.settle();
      await store.flush();
      if (upstream instanceof NodeUpstreamClient) upstream.close();
    },
  };
}

async function main(): Promise<void> {
  let logger: JsonLogger;
  let config: ProxyConfig;
  const stdout = new CoalescingStdout();
  process.on('exit', stdout.flush);
  try {
    logger = new JsonLogger(parseLogLevel(process.env.LOG_LEVEL), stdout.write);
    config = loadConfig();
  } catch (err) {
    const message = err instanceof ConfigError || err instanceof Error ? err.message : String(err);
    process.stderr.write(`gemini-proxy: ${message}\n`);
    process.exit(1);
  }
  let running: RunningServer;
  try {
    running = await startLocalServer({ config, logger });
  } catch (err) {
    // e.g. the state table could not be created, or the port is taken
    process.stderr.write(`gemini-proxy: cannot start: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  }
  const keys = config.groups.reduce((n, g) => n + g.api_keys.length, 0);
  logger.info('listening', {
    url: running.url,
    openaiBaseUrl: `${running.url}/v1`,
    groups: config.groups.length,
    keys,
    auth: config.client_tokens.length > 0,
    state: config.state.store,
  });
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info('shutting down', { signal });
    running.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  void main();
}
