import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import http from 'node:http';
import { type AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { loadConfig } from '../adapters/config-loader.js';
import { CoalescingStdout, JsonLogger, parseLogLevel } from '../adapters/logger.js';
import { createStateStore } from '../adapters/state-store.js';
import { NodeUpstreamClient } from '../adapters/upstream-http.js';
import { ConfigError, isLoopbackHost } from '../core/config/parse.js';
import type { ProxyConfig } from '../core/config/schema.js';
import type { Headers, ProxyResponse, UpstreamClient } from '../core/http.js';
import type { KeyStateStore } from '../core/key-state.js';
import type { Logger } from '../core/logger.js';
import type { MetricsSink } from '../core/metrics.js';
import { openAiError, openAiErrorBody } from '../core/openai-errors.js';
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

/**
 * Resolves true once the response emits `event` or closes, false if neither happens within `ms`;
 * leaves no listener or timer behind.
 */
function within(res: http.ServerResponse, event: 'drain' | 'finish', ms: number): Promise<boolean> {
  if (res.destroyed) return Promise.resolve(true);
  return new Promise((resolve) => {
    const done = (ok: boolean) => {
      clearTimeout(timer);
      res.off(event, onEvent);
      res.off('close', onEvent);
      resolve(ok);
    };
    const onEvent = () => done(true);
    const timer = setTimeout(() => done(false), ms);
    res.on(event, onEvent);
    res.on('close', onEvent);
  });
}

/** The request body, with a `100 Continue` sent when it is first read (the client waits for it to send). */
async function* askingForBody(
  req: http.IncomingMessage,
  res: http.ServerResponse,
): AsyncGenerator<Uint8Array> {
  if (!res.headersSent) res.writeContinue();
  yield* req;
}

/** Whole bodies larger than this are written in slices of it, so a stalled reader is noticed in between. */
const SLICE_BYTES = 64 * 1024;

function* slices(bytes: Uint8Array): Generator<Uint8Array> {
  for (let i = 0; i < bytes.byteLength; i += SLICE_BYTES) yield bytes.subarray(i, i + SLICE_BYTES);
}

/**
 * Writes a core response to a node:http response, honouring backpressure; never buffers a stream.
 * Returns false if the client stopped reading: a write stayed blocked for `stallMs` (the caller drops it).
 */
async function writeResponse(
  res: http.ServerResponse,
  response: ProxyResponse,
  stallMs: number,
): Promise<boolean> {
  const { body } = response;
  let chunks: Iterable<Uint8Array> | AsyncIterable<Uint8Array>;
  if (typeof body === 'string' || body instanceof Uint8Array) {
    const bytes = typeof body === 'string' ? Buffer.from(body) : body;
    response.headers['content-length'] ??= String(bytes.byteLength);
    if (bytes.byteLength <= SLICE_BYTES) {
      res.writeHead(response.status, response.headers);
      res.end(bytes);
      return res.writableFinished || (await within(res, 'finish', stallMs));
    }
    chunks = slices(bytes);
  } else {
    chunks = body;
  }
  res.writeHead(response.status, response.headers);
  for await (const chunk of chunks) {
    if (res.destroyed) return true; // the client went away: not a stall
    if (!res.write(chunk) && !(await within(res, 'drain', stallMs))) return false;
  }
  if (res.destroyed) return true;
  res.end();
  return res.writableFinished || (await within(res, 'finish', stallMs));
}

/** Drops a connection at once (a TCP reset frees the data queued for a client that stopped reading). */
function drop(res: http.ServerResponse): void {
  const { socket } = res;
  if (socket instanceof Socket && !socket.destroyed) {
    try {
      socket.resetAndDestroy();
      return;
    } catch {
      // not a TCP socket: a plain destroy below
    }
  }
  res.destroy();
}

/** A raw `HTTP/1.1` error answer in OpenAI's shape, for a connection node:http won't build a response on. */
function rawAnswer(status: number, message: string, code: string): string {
  const body = JSON.stringify(openAiErrorBody(message, 'invalid_request_error', code));
  return (
    `HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? ''}\r\ncontent-type: application/json\r\n` +
    `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`
  );
}

/** What to answer to a request node:http could not parse (`clientError`); undefined for network errors. */
function clientErrorAnswer(code: string | undefined): [number, string, string] | undefined {
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT')
    return [408, 'The request was not received in time.', 'request_timeout'];
  if (code === 'HPE_HEADER_OVERFLOW') return [431, 'The request headers are too large.', 'headers_too_large'];
  if (code === 'HPE_CHUNK_EXTENSIONS_OVERFLOW')
    return [413, 'The chunk extensions of the request are too large.', 'request_too_large'];
  if (code?.startsWith('HPE_'))
    return [400, `The request is not valid HTTP/1.1 (${code}).`, 'malformed_request'];
  return undefined;
}

/** A Host header, `host[:port]`: the host (an IPv6 one in brackets) and the port, if any. */
const HOST_HEADER = /^(\[[0-9a-f:.]+\]|[^:[\]]+)(?::(\d{1,5}))?$/i;

/**
 * With no client tokens, the request must come from this machine's own software, not from a web page a
 * browser was sent to: a page can make a browser call a loopback address (DNS rebinding, or a plain
 * cross-site request), but not choose its Host nor hide its Origin. Returns the refusal's code, if any.
 */
function foreignSite(headers: Headers, port: number): 'forbidden_host' | 'forbidden_origin' | undefined {
  const host = HOST_HEADER.exec(typeof headers.host === 'string' ? headers.host : '');
  if (host === null || !isLoopbackHost(host[1]!) || Number(host[2] ?? 80) !== port) return 'forbidden_host';
  const { origin } = headers;
  if (origin === undefined) return undefined;
  const url = typeof origin === 'string' && URL.canParse(origin) ? new URL(origin) : undefined;
  const loopback = url !== undefined && /^https?:$/.test(url.protocol) && isLoopbackHost(url.hostname);
  return loopback ? undefined : 'forbidden_origin';
}

/** Starts the proxy on node:http: the same core the Lambda handler wraps. */
export async function startLocalServer(options: LocalServerOptions): Promise<RunningServer> {
  const { config, logger } = options;
  const limits = config.server;
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
  const unauthenticated = config.client_tokens.length === 0;
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
    if (await writeResponse(res, response, limits.write_stall_timeout_ms)) return;
    logger.warn('client stopped reading', {
      requestId: response.headers['x-request-id'],
      stalledMs: limits.write_stall_timeout_ms,
    });
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
    if (unauthenticated) {
      const refusal = foreignSite(req.headers, port);
      if (refusal !== undefined) {
        const what = refusal === 'forbidden_host' ? 'Host' : 'Origin';
        const message = `This proxy runs without client tokens and serves only this machine: the ${what} header is not a loopback address.`;
        refuse(req, res, [403, message, refusal], false);
        return;
      }
    }
    const { socket } = req;
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
      // `Expect: 100-continue`: the client sends its body only once asked, i.e. once the core reads it
      // (after the token is checked); a refusal comes without asking.
      body: expectsContinue ? askingForBody(req, res) : req,
      requestId: randomUUID(),
      signal: controller.signal,
    };
    proxy
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
