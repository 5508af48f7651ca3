import type { Headers } from './http.js';

/**
 * The only client request headers sent upstream: what Gemini needs to read the body and shape the answer.
 * Everything else stays here. Among what a client could otherwise send: `x-goog-user-project` (switches
 * the project billed and quota-checked), `x-http-method-override` (turns a POST into a DELETE),
 * `x-goog-fieldmask`, `x-goog-api-client`, `x-server-timeout`, credentials (`authorization`,
 * `x-goog-api-key`, `api-key`, cookies), `origin`/`referer`, `user-agent`, hop-by-hop and forwarding
 * headers, `accept-encoding` / `content-encoding` (the proxy reads and relays bodies as they are), and
 * the proxy's own (`x-gemini-fallback`). The key is added by the caller.
 */
const FORWARD_REQUEST: ReadonlySet<string> = new Set(['content-type', 'accept']);

/**
 * Response headers never passed back: hop-by-hop framing, Google's own cookies and alt-svc, and its
 * cross-origin grants. Google's CORS answer reflects the caller's Origin with credentials; relayed, it
 * would let a web page on any origin read the proxy's answers. The proxy offers no CORS of its own.
 */
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
  'timing-allow-origin',
]);
/** Every upstream `access-control-*` header is dropped too. */
const CORS_RESPONSE = /^access-control-/;

function copy(headers: Headers, keep: (name: string) => boolean): Record<string, string> {
  const out: Record<string, string> = {};
  // Headers named in Connection are hop-by-hop too (RFC 9110 §7.6.1).
  const connection = headerValue(headers, 'connection');
  const listed = connection === undefined ? undefined : new Set(connection.toLowerCase().split(/\s*,\s*/));
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined) continue;
    const lower = name.toLowerCase();
    if (!keep(lower) || listed?.has(lower)) continue;
    out[lower] = Array.isArray(value) ? value.join(', ') : value;
  }
  return out;
}

/** Client request headers fit to send upstream: an allow-list (the key is added by the caller). */
export function upstreamRequestHeaders(headers: Headers): Record<string, string> {
  return copy(headers, (name) => FORWARD_REQUEST.has(name));
}

/** Upstream response headers fit to return to the client. */
export function clientResponseHeaders(headers: Headers): Record<string, string> {
  return copy(headers, (name) => !DROP_RESPONSE.has(name) && !CORS_RESPONSE.test(name));
}

export function headerValue(headers: Headers, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}
