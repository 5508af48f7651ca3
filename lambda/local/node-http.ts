import { randomUUID } from 'node:crypto';
import type http from 'node:http';
import { Socket } from 'node:net';
import type { ProxyRequest, ProxyResponse } from '../core/http.js';

/** node:http ⇄ the core's web-standard seam: a request in, a response out (with backpressure), a drop. */

/**
 * The core's view of a node:http request. A client that goes away before the answer is complete aborts
 * it (and with it the upstream call). With `Expect: 100-continue` the client sends its body only once
 * asked, i.e. once the core reads it (after the token is checked); a refusal comes without asking.
 */
export function toProxyRequest(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  expectsContinue: boolean,
): ProxyRequest {
  const controller = new AbortController();
  res.once('close', () => {
    if (!res.writableFinished) controller.abort();
  });
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  return {
    method: req.method ?? 'GET',
    path: q === -1 ? url : url.slice(0, q),
    query: q === -1 ? '' : url.slice(q + 1),
    headers: req.headers,
    body: expectsContinue ? askingForBody(req, res) : req,
    requestId: randomUUID(),
    signal: controller.signal,
  };
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
export async function writeResponse(
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
export function drop(res: http.ServerResponse): void {
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
