import http from 'node:http';
import { isLoopbackHost } from '../core/config/parse.js';
import type { Headers } from '../core/http.js';
import { openAiErrorBody } from '../core/openai-errors.js';

/** What the local server refuses before the core sees a request: unparseable requests, foreign sites. */

/** A raw `HTTP/1.1` error answer in OpenAI's shape, for a connection node:http won't build a response on. */
export function rawAnswer(status: number, message: string, code: string): string {
  const body = JSON.stringify(openAiErrorBody(message, 'invalid_request_error', code));
  return (
    `HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? ''}\r\ncontent-type: application/json\r\n` +
    `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`
  );
}

/** What to answer to a request node:http could not parse (`clientError`); undefined for network errors. */
export function clientErrorAnswer(code: string | undefined): [number, string, string] | undefined {
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
export function foreignSite(
  headers: Headers,
  port: number,
): 'forbidden_host' | 'forbidden_origin' | undefined {
  const host = HOST_HEADER.exec(typeof headers.host === 'string' ? headers.host : '');
  if (host === null || !isLoopbackHost(host[1]!) || Number(host[2] ?? 80) !== port) return 'forbidden_host';
  const { origin } = headers;
  if (origin === undefined) return undefined;
  const url = typeof origin === 'string' && URL.canParse(origin) ? new URL(origin) : undefined;
  const loopback = url !== undefined && /^https?:$/.test(url.protocol) && isLoopbackHost(url.hostname);
  return loopback ? undefined : 'forbidden_origin';
}
