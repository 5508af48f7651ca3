// Outbound proxy URLs (`groups[].proxy_url`, `upstream.proxy_url`): parsing and a safe description.
// Pure: no I/O. Nothing here ever puts the URL or its password into a message or a string form.

/** The schemes an outbound proxy may use; `socks5h` has the proxy resolve the target's name. */
export type ProxyScheme = 'http' | 'https' | 'socks5' | 'socks5h';

/** Credentials for the proxy, percent-decoded from the URL's `user:password@`. */
export interface ProxyAuth {
  readonly username: string;
  readonly password: string;
}

/**
 * An outbound proxy, parsed by {@link parseProxyUrl}. The (frozen) objects that function makes turn into
 * `scheme://host:port`, never the credentials, under `String()`, `JSON.stringify` and `util.inspect`;
 * a copy made by spreading one loses that, so pass them on as they are.
 */
export interface ProxyEndpoint {
  readonly scheme: ProxyScheme;
  /** Host name or IP address; an IPv6 address without brackets. */
  readonly host: string;
  readonly port: number;
  readonly auth?: ProxyAuth | undefined;
}

/** A malformed proxy URL; the message names the field and never quotes the URL. */
export class ProxyUrlError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'ProxyUrlError';
  }
}

const DEFAULT_PORTS: Record<ProxyScheme, number> = { http: 80, https: 443, socks5: 1080, socks5h: 1080 };
const SCHEMES = new Set<string>(Object.keys(DEFAULT_PORTS));
/** The longest user name or password RFC 1929 can carry (one length byte). */
const SOCKS_CREDENTIAL_MAX_BYTES = 255;
/** A DNS name, or an IPv4 address (which this also matches). */
const HOST_NAME =
  /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*\.?$/i;
const IPV6_IN_BRACKETS = /^\[[0-9a-f:.]+\]$/i;
const INSPECT = Symbol.for('nodejs.util.inspect.custom');

/** `scheme://host:port` for logs, errors and health output: never the credentials. */
export function describeProxy(endpoint: ProxyEndpoint): string {
  const host = endpoint.host.includes(':') ? `[${endpoint.host}]` : endpoint.host;
  return `${endpoint.scheme}://${host}:${endpoint.port}`;
}

/**
 * What is wrong with `text` as a proxy URL, in words that never quote it, or `undefined` when it is
 * fine. For a schema's check; {@link parseProxyUrl} uses the same rules.
 */
export function proxyUrlProblem(text: unknown): string | undefined {
  const parsed = parse(text);
  return typeof parsed === 'string' ? parsed : undefined;
}

/**
 * Parses `http://`, `https://`, `socks5://` or `socks5h://` with an optional `user:password@`
 * (percent-encoded) and port (default 80, 443 and 1080). A path, query or fragment is refused.
 *
 * @param field where the URL came from, e.g. `groups[0].proxy_url`: named in the error.
 * @throws ProxyUrlError `field: what is wrong`, never quoting the URL or its password.
 */
export function parseProxyUrl(text: unknown, field: string): ProxyEndpoint {
  const parsed = parse(text);
  if (typeof parsed === 'string') throw new ProxyUrlError(`${field}: ${parsed}`);
  return parsed;
}

function parse(text: unknown): ProxyEndpoint | string {
  if (typeof text !== 'string' || text.trim() === '') return 'expected a proxy URL such as http://host:3128';
  let url: URL;
  try {
    url = new URL(text.trim());
  } catch {
    // The parser's own error carries the input: it is dropped, not chained as a cause.
    return 'not a valid URL';
  }
  const scheme = url.protocol.slice(0, -1).toLowerCase();
  if (!SCHEMES.has(scheme)) return 'unsupported scheme; use http://, https://, socks5:// or socks5h://';
  if (url.pathname !== '' && url.pathname !== '/') return 'a proxy URL takes no path';
  if (url.search !== '' || url.hash !== '') return 'a proxy URL takes no query or fragment';
  const host = url.hostname;
  if (host === '') return 'expected a host';
  if (!HOST_NAME.test(host) && !IPV6_IN_BRACKETS.test(host)) return 'expected a host name or IP address';
  const port = url.port === '' ? DEFAULT_PORTS[scheme as ProxyScheme] : Number(url.port);
  if (!Number.isInteger(port) || port < 1 || port > 65535) return 'expected a port from 1 to 65535';
  const auth = credentials(url, scheme as ProxyScheme);
  if (typeof auth === 'string') return auth;
  return endpoint({
    scheme: scheme as ProxyScheme,
    host: host.startsWith('[') ? host.slice(1, -1).toLowerCase() : host.toLowerCase(),
    port,
    auth,
  });
}

function credentials(url: URL, scheme: ProxyScheme): ProxyAuth | undefined | string {
  if (url.username === '' && url.password === '') return undefined;
  let username: string;
  let password: string;
  try {
    username = decodeURIComponent(url.username);
    password = decodeURIComponent(url.password);
  } catch {
    return 'the credentials are not valid percent-encoding';
  }
  if (scheme === 'http' || scheme === 'https') {
    // Basic authentication joins them with a colon: one in the user name would move the split.
    if (username.includes(':')) return "the user name must not contain ':'";
  } else {
    const encoder = new TextEncoder();
    const longest = Math.max(encoder.encode(username).length, encoder.encode(password).length);
    if (longest > SOCKS_CREDENTIAL_MAX_BYTES)
      return 'a SOCKS5 user name and password take at most 255 bytes each';
    if (username === '') return 'a SOCKS5 password needs a user name';
  }
  return { username, password };
}

/** The endpoint, with its string, JSON and inspected forms limited to `scheme://host:port`. */
function endpoint(fields: ProxyEndpoint): ProxyEndpoint {
  const described = describeProxy(fields);
  const value = { ...fields };
  if (value.auth === undefined) delete value.auth;
  const show = { value: () => described, enumerable: false };
  Object.defineProperties(value, { toString: show, toJSON: show, [INSPECT]: show });
  return Object.freeze(value);
}
