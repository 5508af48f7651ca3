import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import {
  describeProxy,
  ProxyUrlError,
  parseProxyUrl,
  proxyUrlProblem,
} from '../../lambda/core/upstream-proxy.js';

const FIELD = 'groups[0].proxy_url';
const PASSWORD = 'pa$$ w:rd/é';
const ENCODED_PASSWORD = encodeURIComponent(PASSWORD);

/** The error `parseProxyUrl` throws for `text`, checked to be a ProxyUrlError naming the field. */
function failure(text: unknown, field = FIELD): ProxyUrlError {
  try {
    parseProxyUrl(text, field);
  } catch (err) {
    expect(err).toBeInstanceOf(ProxyUrlError);
    const error = err as ProxyUrlError;
    expect(error.name).toBe('ProxyUrlError');
    expect(error.message.startsWith(`${field}: `)).toBe(true);
    return error;
  }
  throw new Error('expected parseProxyUrl to throw');
}

describe('parseProxyUrl: schemes, hosts and default ports', () => {
  it.each([
    ['http://proxy.example:3128', 'http', 'proxy.example', 3128],
    ['http://proxy.example', 'http', 'proxy.example', 80],
    ['http://proxy.example/', 'http', 'proxy.example', 80],
    ['https://proxy.example', 'https', 'proxy.example', 443],
    ['https://proxy.example:8443', 'https', 'proxy.example', 8443],
    ['socks5://10.0.0.7', 'socks5', '10.0.0.7', 1080],
    ['socks5://10.0.0.7:9050', 'socks5', '10.0.0.7', 9050],
    ['socks5h://tor.internal', 'socks5h', 'tor.internal', 1080],
    ['SOCKS5H://Tor.Internal:1081', 'socks5h', 'tor.internal', 1081],
    ['http://[::1]:3128', 'http', '::1', 3128],
    ['socks5://[2001:db8::1]', 'socks5', '2001:db8::1', 1080],
    ['  http://proxy.example:3128  ', 'http', 'proxy.example', 3128],
  ])('%s', (text, scheme, host, port) => {
    const endpoint = parseProxyUrl(text, FIELD);
    expect(endpoint).toMatchObject({ scheme, host, port });
    expect(endpoint.auth).toBeUndefined();
  });
});

describe('parseProxyUrl: credentials', () => {
  it('percent-decodes the user name and password', () => {
    const endpoint = parseProxyUrl(`http://al%40ice:${ENCODED_PASSWORD}@proxy.example:3128`, FIELD);
    expect(endpoint.auth).toEqual({ username: 'al@ice', password: PASSWORD });
  });

  it('takes a user name alone (empty password), on every scheme', () => {
    for (const scheme of ['http', 'https', 'socks5', 'socks5h']) {
      expect(parseProxyUrl(`${scheme}://bob@proxy.example`, FIELD).auth).toEqual({
        username: 'bob',
        password: '',
      });
    }
  });

  it('takes SOCKS5 credentials of up to 255 bytes each, and refuses longer ones', () => {
    const max = 'x'.repeat(255);
    expect(parseProxyUrl(`socks5://${max}:${max}@h`, FIELD).auth).toEqual({ username: max, password: max });
    const long = `socks5://u:${'y'.repeat(256)}@h`;
    expect(failure(long).message).toBe(
      `${FIELD}: SOCKS5 credentials take a user name, and at most 255 bytes each`,
    );
    // 128 two-byte characters: 256 bytes.
    expect(() => parseProxyUrl(`socks5://u:${encodeURIComponent('é'.repeat(128))}@h`, FIELD)).toThrow(
      /255 bytes/,
    );
  });

  it('refuses a SOCKS5 password without a user name', () => {
    expect(failure('socks5://:secret-only@h').message).toMatch(/SOCKS5 credentials take a user name/);
  });

  it("refuses a ':' in an http user name (Basic authentication splits at the first one)", () => {
    expect(failure('http://a%3Ab:secret-colon@h').message).toBe(
      `${FIELD}: the user name must not contain ':'`,
    );
  });
});

describe('parseProxyUrl: malformed URLs name the field and never echo the input', () => {
  const SECRET = 'Hunter2-secret';
  const cases: Array<[string, unknown, RegExp]> = [
    ['not a string', 42, /expected a proxy URL/],
    ['empty', '', /expected a proxy URL/],
    ['not a URL', `${SECRET}@@ nope`, /expected a proxy URL/],
    [
      'no scheme',
      `user:${SECRET}@proxy.example:3128`,
      /unsupported scheme; use http:\/\/, https:\/\/, socks5:\/\/ or socks5h:\/\//,
    ],
    ['socks4', `socks4://u:${SECRET}@proxy.example`, /unsupported scheme/],
    ['ftp', `ftp://u:${SECRET}@proxy.example`, /unsupported scheme/],
    ['a path', `http://u:${SECRET}@proxy.example/${SECRET}`, /takes no path, query or fragment/],
    ['a query', `http://u:${SECRET}@proxy.example?${SECRET}`, /takes no path, query or fragment/],
    ['a fragment', `socks5://u:${SECRET}@proxy.example#${SECRET}`, /takes no path, query or fragment/],
    ['no host', 'socks5://', /expected a host name or IP address/],
    ['a strange host', `socks5://u:${SECRET}@pro%78y.example`, /expected a host name or IP address/],
    ['port 0', `http://u:${SECRET}@proxy.example:0`, /expected a port from 1 to 65535/],
    ['port too big', `http://u:${SECRET}@proxy.example:70000`, /expected a proxy URL/],
    ['bad percent-encoding', `http://u:${SECRET}%zz@proxy.example`, /not valid percent-encoding/],
    ['bad percent-encoding (valid URL)', `http://u:${SECRET}%E9@proxy.example`, /not valid percent-encoding/],
  ];
  it.each(cases)('%s', (_name, text, expected) => {
    const error = failure(text);
    expect(error.message).toMatch(expected);
    expect(error.message).not.toContain(SECRET);
    expect(error.cause).toBeUndefined();
    expect(String(error)).not.toContain(SECRET);
    expect(inspect(error)).not.toContain(SECRET);
    expect(proxyUrlProblem(text)).toBe(error.message.slice(FIELD.length + 2));
  });

  it('refuses schemes that are names on Object.prototype', () => {
    expect(failure('constructor://x').message).toMatch(/unsupported scheme/);
  });

  it('names whichever field it is given', () => {
    expect(failure('gopher://x', 'upstream.proxy_url').message).toMatch(
      /^upstream\.proxy_url: unsupported scheme/,
    );
  });

  it('proxyUrlProblem is undefined for a good URL', () => {
    expect(proxyUrlProblem('socks5h://u:p@proxy.example:1080')).toBeUndefined();
  });
});

describe('describeProxy and the string forms of an endpoint never show credentials', () => {
  const endpoint = parseProxyUrl(`socks5://alice:${ENCODED_PASSWORD}@proxy.example:1080`, FIELD);

  it('describeProxy is scheme://host:port', () => {
    expect(describeProxy(endpoint)).toBe('socks5://proxy.example:1080');
    expect(describeProxy(parseProxyUrl('http://[::1]', FIELD))).toBe('http://[::1]:80');
    expect(
      describeProxy({ scheme: 'https', host: 'h', port: 443, auth: { username: 'u', password: 'p' } }),
    ).toBe('https://h:443');
  });

  it('String(), template strings, JSON and inspect show scheme://host:port only', () => {
    const forms = [
      String(endpoint),
      `${endpoint}`,
      JSON.stringify(endpoint),
      JSON.stringify({ groups: [{ proxy: endpoint }] }),
      inspect(endpoint),
      inspect({ nested: { endpoint } }, { depth: 5 }),
    ];
    for (const form of forms) {
      expect(form).toContain('socks5://proxy.example:1080');
      expect(form).not.toContain(PASSWORD);
      expect(form).not.toContain(ENCODED_PASSWORD);
      expect(form).not.toContain('alice');
    }
  });

  it('the endpoint is frozen and keeps its fields', () => {
    expect(Object.isFrozen(endpoint)).toBe(true);
    expect(Object.keys(endpoint).sort()).toEqual(['auth', 'host', 'port', 'scheme']);
    expect(endpoint.auth).toEqual({ username: 'alice', password: PASSWORD });
  });
});
