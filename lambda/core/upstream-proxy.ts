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

const DEFAULT_PORTS: Record<string, number> = { http: 80, https: 443, socks5: 1080, socks5h: 1080 };
/** A host name or IPv4 address (the URL parser has checked it further), or an IPv6 address in brackets. */
const HOST = /^([a-z0-9.-]+|\[[0-9a-f:.]+\])$/i;

/** `host:port`, an IPv6 address in brackets. */
export function hostPort(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/** `scheme://host:port` for logs, errors and health output: never the credentials. */
export function describeProxy(endpoint: ProxyEndpoint): string {
  return `${endpoint.scheme}://${hostPort(endpoint.host, endpoint.port)}`;
}

/**
 * What is wrong with `text` as a proxy URL, in words that never quote it, or `undefined` when it is
 * fine. For a schema's check; {@link parseProxyUrl} applies the same rules.
 */
export function proxyUrlProblem(text: unknown): string | undefined {
  const parsed = parse(text);
  return typeof parsed === 'string' ? parsed : undefined;
}

/**
 * Parses `http://`, `https://`, `socks5://` or `socks5h://` with an optional `user:password@`
 * (percent-encoded) and port (default 80, 443 and 1080). A path, query or fragment is refused, and so
 * are SOCKS5 credentials RFC 1929 can't carry (an empty user name, more than 255 bytes).
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
  let url: URL;
  try {
    url = new URL(String(text).trim());
  } catch {
    // The parser's own error carries the input: it is dropped, not chained as a cause.
    return 'expected a proxy URL';
  }
  const scheme = url.protocol.slice(0, -1) as ProxyScheme;
  const port = Number(url.port || DEFAULT_PORTS[scheme]);
  if (!Object.hasOwn(DEFAULT_PORTS, scheme))
    return 'unsupported scheme; use http://, https://, socks5:// or socks5h://';
  if (url.pathname.length > 1 || url.search || url.hash)
    return 'a proxy URL takes no path, query or fragment';
  if (!HOST.test(url.hostname)) return 'expected a host name or IP address';
  if (!port) return 'expected a port from 1 to 65535';
  let auth: ProxyAuth | undefined;
  if (url.username || url.password) {
    try {
      auth = { username: decodeURIComponent(url.username), password: decodeURIComponent(url.password) };
    } catch {
      return 'the credentials are not valid percent-encoding';
    }
    const { username, password } = auth;
    if (scheme.startsWith('http')) {
      // Basic authentication joins them with a colon: one in the user name would move the split.
      if (username.includes(':')) return "the user name must not contain ':'";
    } else if (!username || Math.max(Buffer.byteLength(username), Buffer.byteLength(password)) > 255) {
      return 'SOCKS5 credentials take a user name, and at most 255 bytes each';
    }
  }
  const value = {
    scheme,
    host: url.hostname.replace(/^\[(.*)\]$/, '$1').toLowerCase(),
    port,
    ...(auth && { auth }),
  };
  // Its string, JSON and inspected forms: `scheme://host:port`.
  const show = { value: () => describeProxy(value) };
  return Object.freeze(
    Object.defineProperties(value, {
      toString: show,
      toJSON: show,
      [Symbol.for('nodejs.util.inspect.custom')]: show,
    }),
  );
}
