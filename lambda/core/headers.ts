import type { Headers } from './http.js';

/** Request headers never forwarded upstream: hop-by-hop, framing, the client's credentials, encodings. */
const DROP_REQUEST = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'host',
  'content-length',
  'expect',
  'authorization',
  'x-goog-api-key',
  'x-api-key',
  'cookie',
  'accept-encoding',
  'forwarded',
  'x-forwarded-for',
  'x-forwarded-host',
  'x-forwarded-proto',
  'x-forwarded-port',
  'x-real-ip',
  'x-request-id',
  'x-amzn-trace-id',
]);

/** Response headers never passed back: hop-by-hop framing and Google's own cookies and alt-svc. */
const DROP_RESPONSE = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'alt-svc',
  'set-cookie',
]);

function copy(headers: Headers, drop: ReadonlySet<string>): Record<string, string> {
  const out: Record<string, string> = {};
  // Headers named in Connection are hop-by-hop too (RFC 9110 §7.6.1).
  const connection = headerValue(headers, 'connection');
  const listed = connection === undefined ? undefined : new Set(connection.toLowerCase().split(/\s*,\s*/));
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined) continue;
    const lower = name.toLowerCase();
    if (drop.has(lower) || listed?.has(lower)) continue;
    out[lower] = Array.isArray(value) ? value.join(', ') : value;
  }
  return out;
}

/** Client request headers fit to send upstream (the key is added by the caller). */
export function upstreamRequestHeaders(headers: Headers): Record<string, string> {
  return copy(headers, DROP_REQUEST);
}

/** Upstream response headers fit to return to the client. */
export function clientResponseHeaders(headers: Headers): Record<string, string> {
  return copy(headers, DROP_RESPONSE);
}

export function headerValue(headers: Headers, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}
