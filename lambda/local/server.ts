import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { configFromText, type LoadedConfig, loadConfigSource } from '../adapters/config-loader.js';
import { CoalescingStdout, JsonLogger, parseLogLevel } from '../adapters/logger.js';
import { PrometheusMetrics } from '../adapters/prometheus-metrics.js';
import { createStateStore, createUsageLedger } from '../adapters/state/create-state-store.js';
import { NodeUpstreamClient } from '../adapters/upstream-http.js';
import { ConfigError } from '../core/config/parse.js';
import type { ProxyConfig } from '../core/config/schema.js';
import type { ProxyResponse, UpstreamClient } from '../core/http.js';
import type { KeyStateStore } from '../core/key-state/port.js';
import type { Logger } from '../core/logger.js';
import { everySink, type MetricsSink } from '../core/metrics.js';
import { openAiError } from '../core/openai-errors.js';
import type { GeminiProxy } from '../core/proxy.js';
import type { UsageLedger } from '../core/usage-ledger.js';
import { watchConfig } from './config-watch.js';
import { clientErrorAnswer, foreignSite, rawAnswer } from './guards.js';
import { type MetricsListener, startMetricsListener } from './metrics-server.js';
import { drop, toProxyRequest, writeResponse } from './node-http.js';
import { ProxyGenerations, type ReloadOutcome } from './reload.js';

export interface LocalServerOptions {
  readonly config: ProxyConfig;
  readonly logger: Logger;
  readonly store?: KeyStateStore;
  readonly upstream?: UpstreamClient;
  readonly now?: () => number;
  readonly metrics?: MetricsSink;
  /** @default the ledger beside the store the config names (`createUsageLedger`) */
  readonly usage?: UsageLedger;
}

export interface RunningServer {
  readonly url: string;
  /** The proxy new requests go to (a reload replaces it). */
  readonly proxy: GeminiProxy;
  /** The configuration in effect. */
  readonly config: ProxyConfig;
  readonly server: http.Server;
  /** Where Prometheus scrapes `/metrics` (`server.metrics_port`), if it is on. */
  readonly metricsUrl: string | undefined;
  /**
   * Serves new requests with `config` (validated, e.g. by `loadConfig`); requests in flight finish on the
   * proxy that took them, and key state, circuits and health scores carry over. Settings read only at
   * start (the listening address and timeouts, `state`, the circuits' policy) keep their running values
   * and are named in the outcome and in a warning.
   */
  reload(config: ProxyConfig): ReloadOutcome;
  /** Stops accepting, lets in-flight requests finish (up to `graceMs`), then closes everything. */
  close(graceMs?: number): Promise<void>;
}

/** Starts the proxy on node:http: the same core the Lambda handler wraps. */
export async function startLocalServer(options: LocalServerOptions): Promise<RunningServer> {
  const { config, logger } = options;
  /** Read once: the listening socket's settings (a reload keeps them, see `ProxyGenerations`). */
  const limits = config.server;
  const upstream = options.upstream ?? new NodeUpstreamClient();
  const store = options.store ?? (await createStateStore(config.state, logger));
  const usage = options.usage ?? createUsageLedger(config.state, logger);
  // Scraped key counts and circuits come from the proxy serving at the time.
  const prometheus =
    limits.metrics_port === undefined ? undefined : new PrometheusMetrics(() => proxies.proxy.describe());
  const proxies: ProxyGenerations = new ProxyGenerations(config, {
    logger,
    store,
    upstream,
    now: options.now,
    metrics: everySink(options.metrics, prometheus),
    usage,
  });
  let port = 0;
  /** Responses begun and not yet closed on each connection: a raw error answer must not cut into one. */
  const begun = new WeakMap<Duplex, number>();

  /**
   * Sends a response on `socket` (the request's connection: taken when the request came, as node:http
   * unhooks `req.socket` from a request whose body was left unread); drops it if the client stops reading.
   */
  const answer = async (
    req: http.IncomingMessage,
    res: http.ServerResponse,
    socket: Duplex,
    response: ProxyResponse,
  ) => {
    begun.set(socket, (begun.get(socket) ?? 0) + 1);
    res.once('close', () => begun.set(socket, (begun.get(socket) ?? 1) - 1));
    // Answered before the request was all received (401, 404, 413): close rather than read the rest.
    // What has already arrived is parsed first (one turn), so a body sent whole keeps its connection.
    if (!req.complete) await new Promise((resolve) => setImmediate(resolve));
    if (!req.complete) response.headers.connection = 'close';
    const stalledMs = proxies.config.server.write_stall_timeout_ms;
    if (await writeResponse(res, response, stalledMs)) return;
    logger.warn('client stopped reading', { requestId: response.headers['x-request-id'], stalledMs });
    drop(res);
  };

  /** Answers a request the core never sees (here, not in the core: Lambda gets no such requests). */
  const refuse = (
    req: http.IncomingMessage,
    res: http.ServerResponse,
    [status, message, code]: [number, string, string],
    close: boolean,
  ) => {
    const requestId = randomUUID();
    const path = (req.url ?? '/').split('?', 1)[0];
    logger.info('request', { requestId, method: req.method, path, status, refusal: code });
    const response = openAiError(status, message, 'invalid_request_error', code, {
      'x-request-id': requestId,
      ...(close ? { connection: 'close' } : {}),
    });
    answer(req, res, req.socket, response).catch(() => res.destroy());
  };

  const onRequest = (req: http.IncomingMessage, res: http.ServerResponse, expectsContinue = false) => {
    if (req.httpVersionMajor === 1 && req.httpVersionMinor === 1 && req.headers.host === undefined) {
      refuse(req, res, [400, 'An HTTP/1.1 request needs a Host header.', 'missing_host'], true);
      return;
    }
    if (proxies.config.client_tokens.length === 0) {
      const refusal = foreignSite(req.headers, port);
      if (refusal !== undefined) {
        const what = refusal === 'forbidden_host' ? 'Host' : 'Origin';
        const message = `This proxy runs without client tokens and serves only this machine: the ${what} header is not a loopback address.`;
        refuse(req, res, [403, message, refusal], false);
        return;
      }
    }
    const { socket } = req;
    const request = toProxyRequest(req, res, expectsContinue);
    proxies.proxy
      .handle(request)
      .then((response) => answer(req, res, socket, response))
      .catch((err: unknown) => {
        logger.warn('response aborted', {
          requestId: request.requestId,
          error: err instanceof Error ? err.name : 'unknown',
        });
        res.destroy();
      });
  };

  const server = http.createServer(
    {
      headersTimeout: limits.header_timeout_ms,
      requestTimeout: limits.request_receive_timeout_ms,
      keepAliveTimeout: limits.idle_timeout_ms,
      // node:http checks both timeouts every this often (30 s by default): keep it well under the header bound.
      connectionsCheckingInterval: Math.min(1000, Math.max(25, Math.floor(limits.header_timeout_ms / 4))),
      // A missing Host is answered below, in OpenAI's shape, rather than with node:http's empty 400.
      requireHostHeader: false,
    },
    onRequest,
  );
  server.on('checkContinue', (req: http.IncomingMessage, res: http.ServerResponse) =>
    onRequest(req, res, true),
  );
  server.on('checkExpectation', (req: http.IncomingMessage, res: http.ServerResponse) =>
    refuse(req, res, [417, 'Only "Expect: 100-continue" is supported.', 'expectation_failed'], true),
  );
  server.on('connect', (_req: http.IncomingMessage, socket: Duplex) => {
    logger.info('client error', { status: 405, error: 'CONNECT' });
    if (socket.writable) socket.write(rawAnswer(405, 'CONNECT is not supported.', 'method_not_allowed'));
    socket.destroy();
  });
  // Requests node:http can't parse or that time out: answer in OpenAI's shape if nothing was sent yet, then
  // destroy the connection (ending it would leave a client that dribbles its headers connected).
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    const reply = clientErrorAnswer(err.code);
    if (reply !== undefined && socket.writable && !(begun.get(socket) ?? 0)) {
      logger.info('client error', { status: reply[0], error: err.code });
      socket.write(rawAnswer(...reply));
    } else {
      logger.debug('client error', { error: err.code ?? err.name });
    }
    socket.destroy();
  });
  server.listen(limits.port, limits.host);
  await once(server, 'listening');
  const address = server.address() as AddressInfo;
  port = address.port;
  const host = address.address.includes(':') ? `[${address.address}]` : address.address;
  let listener: MetricsListener | undefined;
  if (prometheus !== undefined) {
    const where = { host: limits.metrics_host, port: limits.metrics_port! };
    listener = await startMetricsListener(prometheus, where, logger).catch((err: unknown) => {
      server.close();
      throw err;
    });
  }

  return {
    url: `http://${host}:${port}`,
    get proxy() {
      return proxies.proxy;
    },
    get config() {
      return proxies.config;
    },
    server,
    metricsUrl: listener?.url,
    reload: (next) => proxies.reload(next),
    async close(graceMs = 10_000) {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      // Keep-alive connections go as soon as their in-flight request is answered; stragglers at graceMs.
      const sweep = setInterval(() => server.closeIdleConnections(), 50);
      server.closeIdleConnections();
      const timer = setTimeout(() => server.closeAllConnections(), graceMs);
      await closed;
      await listener?.close();
      clearInterval(sweep);
      clearTimeout(timer);
      await proxies.settle();
      // Stopping: every usage write is waited for (a flush alone bounds its wait, for Lambda invocations).
      await Promise.all([store.flush(), usage.close?.() ?? usage.flush()]);
      if (upstream instanceof NodeUpstreamClient) upstream.close();
    },
  };
}

async function main(): Promise<void> {
  let logger: JsonLogger;
  let loaded: LoadedConfig;
  const stdout = new CoalescingStdout();
  process.on('exit', stdout.flush);
  try {
    logger = new JsonLogger(parseLogLevel(process.env.LOG_LEVEL), stdout.write);
    loaded = loadConfigSource();
  } catch (err) {
    const message = err instanceof ConfigError || err instanceof Error ? err.message : String(err);
    process.stderr.write(`gemini-proxy: ${message}\n`);
    process.exit(1);
  }
  const { config, file } = loaded;
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
    metrics: running.metricsUrl === undefined ? undefined : `${running.metricsUrl}/metrics`,
    state: config.state.store,
  });
  // Edits of the file take effect without a restart; a configuration from GEMINI_API_KEYS has no file.
  const watch =
    file &&
    watchConfig({
      path: file.path,
      initialText: file.text,
      parse: (text) => configFromText(text, file.path),
      apply: (next) => running.reload(next),
      logger,
    });
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info('shutting down', { signal });
    watch?.close();
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
