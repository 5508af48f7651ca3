import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { TLSSocket } from 'node:tls';
import { inspect } from 'node:util';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ProxyTunnelError } from '../../lambda/adapters/proxy-handshakes.js';
import {
  TunnelHttpsAgent,
  type TunnelRequestOptions,
  UpstreamAgentCache,
  type UpstreamAgents,
} from '../../lambda/adapters/proxy-tunnel.js';
import { NodeUpstreamClient } from '../../lambda/adapters/upstream-http.js';
import { UpstreamError } from '../../lambda/core/http.js';
import { type ProxyEndpoint, type ProxyScheme, parseProxyUrl } from '../../lambda/core/upstream-proxy.js';
import { startConnectProxy } from '../support/connect-proxy.js';
import { type Socks5Request, startSocks5Server } from '../support/socks5-server.js';
import { testCertificate } from '../support/tls-cert.js';

const cert = testCertificate();
const USER = 'tunnel-user';
const PASSWORD = 'Tunnel-Pa55:w@rd/secret';
const CREDENTIALS = { username: USER, password: PASSWORD };
/** Every form the password could leak in: as is, percent-encoded, and inside a Basic header. */
const PASSWORD_FORMS = [
  PASSWORD,
  encodeURIComponent(PASSWORD),
  Buffer.from(`${USER}:${PASSWORD}`).toString('base64'),
];
const HANDSHAKE_TIMEOUT_MS = 300;

/** Servers and agents a test opened; all closed after it. */
const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface FakeUpstream {
  /** `http://127.0.0.1:port` or `https://localhost:port`. */
  readonly url: string;
  readonly port: number;
  /** TCP connections accepted. */
  readonly connections: number;
  /** Lets the `/stream` answer send its second chunk. */
  release(): void;
}

/** A fake Gemini on 127.0.0.1, over plain http or TLS: `/hello` answers at once, `/stream` in two chunks. */
async function startUpstream(secure: boolean): Promise<FakeUpstream> {
  let connections = 0;
  let release = () => {};
  const gate = () =>
    new Promise<void>((resolve) => {
      release = resolve;
    });
  const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
    if (req.url === '/stream') {
      const released = gate();
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('first\n');
      void released.then(() => res.end('second\n'));
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain' }).end(`hello over ${secure ? 'tls' : 'http'}`);
  };
  const server = secure ? https.createServer({ ...cert }, handler) : http.createServer(handler);
  server.on('connection', () => connections++);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(async () => {
    release();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: secure ? `https://localhost:${port}` : `http://127.0.0.1:${port}`,
    port,
    get connections() {
      return connections;
    },
    release: () => release(),
  };
}

interface TestProxy {
  readonly scheme: ProxyScheme;
  readonly port: number;
  readonly tunnels: number;
  readonly openConnections: number;
  /** What a SOCKS5 server was asked for (empty for CONNECT proxies). */
  readonly socksRequests: readonly Socks5Request[];
}

/** A proxy of `scheme` on 127.0.0.1 (closed after the test), optionally requiring {@link CREDENTIALS}. */
async function startProxy(
  scheme: ProxyScheme,
  options: { auth?: boolean; hang?: boolean } = {},
): Promise<TestProxy> {
  const auth = options.auth ? CREDENTIALS : undefined;
  if (scheme === 'http' || scheme === 'https') {
    const proxy = await startConnectProxy({
      auth,
      hang: options.hang,
      tls: scheme === 'https' ? cert : undefined,
    });
    cleanups.push(() => proxy.close());
    return Object.assign(Object.create(proxy) as typeof proxy, { scheme, socksRequests: [] });
  }
  const server = await startSocks5Server({ auth, hang: options.hang });
  cleanups.push(() => server.close());
  return Object.assign(Object.create(server) as typeof server, { scheme, socksRequests: server.requests });
}

/** The proxy's endpoint as parsed from its URL, with these credentials in it. */
function endpointOf(
  proxy: { scheme: ProxyScheme; port: number },
  auth?: { username: string; password: string },
) {
  const userinfo = auth ? `${encodeURIComponent(auth.username)}:${encodeURIComponent(auth.password)}@` : '';
  return parseProxyUrl(`${proxy.scheme}://${userinfo}127.0.0.1:${proxy.port}`, 'upstream.proxy_url');
}

/** An agent cache trusting the test certificate (closed after the test). */
function agentCache(handshakeTimeoutMs = 5_000): UpstreamAgentCache {
  const cache = new UpstreamAgentCache({
    targetTls: { ca: cert.cert },
    proxyTls: { ca: cert.cert },
    handshakeTimeoutMs,
  });
  cleanups.push(() => cache.destroy());
  return cache;
}

/** GET `url` with the agent for its scheme; resolves once the response headers arrive. */
function get(
  agents: UpstreamAgents,
  url: string,
  extra: TunnelRequestOptions = {},
): Promise<http.IncomingMessage> {
  const target = new URL(url);
  const secure = target.protocol === 'https:';
  return new Promise((resolve, reject) => {
    const options = {
      hostname: target.hostname,
      port: target.port,
      path: target.pathname,
      agent: secure ? agents.https : agents.http,
      ...extra,
    };
    const req = secure ? https.request(options) : http.request(options);
    req.on('response', resolve);
    req.on('error', reject);
    req.end();
  });
}

async function text(res: http.IncomingMessage): Promise<string> {
  let body = '';
  for await (const chunk of res) body += String(chunk);
  return body;
}

/** The error `promise` rejects with, and how long that took. */
async function failure(promise: Promise<unknown>): Promise<{ error: Error; ms: number }> {
  const started = performance.now();
  try {
    await promise;
  } catch (error) {
    return { error: error as Error, ms: performance.now() - started };
  }
  throw new Error('expected a failure');
}

function expectNoPassword(error: unknown): void {
  for (const form of [String(error), inspect(error, { depth: 10 }), (error as Error).stack ?? '']) {
    for (const secret of PASSWORD_FORMS) expect(form).not.toContain(secret);
  }
}

function expectTunnelError(
  error: unknown,
  kind: ProxyTunnelError['kind'],
  proxy: TestProxy,
): ProxyTunnelError {
  expect(error).toBeInstanceOf(ProxyTunnelError);
  const tunnelError = error as ProxyTunnelError;
  expect(tunnelError.name).toBe('ProxyTunnelError');
  expect(tunnelError.kind).toBe(kind);
  // The proxy is named as scheme://host:port, never with credentials.
  expect(tunnelError.message).toContain(`${proxy.scheme}://127.0.0.1:${proxy.port}`);
  expect(tunnelError.message).not.toContain(USER);
  expectNoPassword(tunnelError);
  return tunnelError;
}

describe.each<ProxyScheme>(['http', 'https', 'socks5', 'socks5h'])(
  'Tunnel through a %s:// proxy',
  (scheme) => {
    it.each([false, true])(
      'carries requests to a target (TLS: %s), one kept-alive tunnel for two',
      async (secure) => {
        const upstream = await startUpstream(secure);
        const proxy = await startProxy(scheme);
        const agents = agentCache().agentsFor(endpointOf(proxy));

        const first = await get(agents, `${upstream.url}/hello`);
        const firstSocket = first.socket;
        expect(first.statusCode).toBe(200);
        expect(await text(first)).toBe(`hello over ${secure ? 'tls' : 'http'}`);
        const second = await get(agents, `${upstream.url}/hello`);
        expect(second.socket).toBe(firstSocket);
        expect(await text(second)).toBe(`hello over ${secure ? 'tls' : 'http'}`);

        expect(proxy.tunnels).toBe(1);
        expect(upstream.connections).toBe(1);
        if (secure) expect(firstSocket).toBeInstanceOf(TLSSocket);
      },
    );

    if (scheme.startsWith('socks')) {
      it(`sends the target ${scheme === 'socks5h' ? 'by name (the proxy resolves it)' : 'as an IPv4 address resolved here'}`, async () => {
        const upstream = await startUpstream(true);
        const proxy = await startProxy(scheme);
        const agents = agentCache().agentsFor(endpointOf(proxy));
        await text(await get(agents, `${upstream.url}/hello`));
        const [request] = proxy.socksRequests;
        expect(request).toEqual(
          scheme === 'socks5h'
            ? { addressType: 3, host: 'localhost', port: upstream.port }
            : { addressType: 1, host: '127.0.0.1', port: upstream.port },
        );
      });
    }

    it('streams an answer chunk by chunk through the tunnel', async () => {
      const upstream = await startUpstream(true);
      const proxy = await startProxy(scheme);
      const res = await get(agentCache().agentsFor(endpointOf(proxy)), `${upstream.url}/stream`);
      const chunks = res[Symbol.asyncIterator]();
      // The second chunk is only sent once the first has arrived: a buffering tunnel would stall here.
      const first = await Promise.race([
        chunks.next(),
        new Promise((_, reject) => setTimeout(() => reject(new Error('first chunk not delivered')), 3_000)),
      ]);
      expect(String((first as IteratorResult<Buffer>).value)).toBe('first\n');
      upstream.release();
      let rest = '';
      for (let next = await chunks.next(); !next.done; next = await chunks.next()) rest += String(next.value);
      expect(rest).toBe('second\n');
    });

    it('passes with the right credentials', async () => {
      const upstream = await startUpstream(true);
      const proxy = await startProxy(scheme, { auth: true });
      const res = await get(agentCache().agentsFor(endpointOf(proxy, CREDENTIALS)), `${upstream.url}/hello`);
      expect(await text(res)).toBe('hello over tls');
      expect(proxy.tunnels).toBe(1);
    });

    it('fails with an auth error, without the password, on wrong or missing credentials', async () => {
      const upstream = await startUpstream(true);
      const proxy = await startProxy(scheme, { auth: true });
      const cache = agentCache();
      const wrong = { username: USER, password: `${PASSWORD}-wrong` };
      for (const credentials of [wrong, undefined]) {
        const { error } = await failure(
          get(cache.agentsFor(endpointOf(proxy, credentials)), `${upstream.url}/hello`),
        );
        const tunnelError = expectTunnelError(error, 'auth', proxy);
        for (const form of [wrong.password, encodeURIComponent(wrong.password)]) {
          expect(inspect(tunnelError)).not.toContain(form);
        }
        if (scheme.startsWith('http') && credentials)
          expect(tunnelError.message).toMatch(/refused authentication \(407\)/);
      }
      expect(proxy.tunnels).toBe(0);
    });

    it('fails at once when the proxy is down (connection refused)', async () => {
      const upstream = await startUpstream(true);
      const closed = await startProxy(scheme);
      const port = closed.port;
      await cleanups.pop()?.();
      const down = { scheme, port } as TestProxy;
      const agents = agentCache().agentsFor(endpointOf(down, CREDENTIALS));
      const { error, ms } = await failure(get(agents, `${upstream.url}/hello`));
      const tunnelError = expectTunnelError(error, 'connect', down);
      expect(tunnelError.message).toContain('ECONNREFUSED');
      expect(ms).toBeLessThan(1_000);
    });

    it('gives up on a proxy that hangs in the handshake within the handshake timeout, and closes the connection', async () => {
      const upstream = await startUpstream(true);
      const proxy = await startProxy(scheme, { hang: true });
      const agents = agentCache(HANDSHAKE_TIMEOUT_MS).agentsFor(endpointOf(proxy, CREDENTIALS));
      const { error, ms } = await failure(get(agents, `${upstream.url}/hello`));
      expectTunnelError(error, 'timeout', proxy);
      expect(ms).toBeGreaterThanOrEqual(HANDSHAKE_TIMEOUT_MS - 20);
      expect(ms).toBeLessThan(HANDSHAKE_TIMEOUT_MS + 1_500);
      await vi.waitFor(() => expect(proxy.openConnections).toBe(0));

      // A request's own connectTimeoutMs bounds the handshake instead.
      const own = await failure(get(agents, `${upstream.url}/hello`, { connectTimeoutMs: 100 }));
      expectTunnelError(own.error, 'timeout', proxy);
      expect(own.error.message).toContain('within 100 ms');
    });
  },
);

describe('Tunnel failures beyond the proxy', () => {
  it('verifies the target as a direct connection does: an untrusted certificate fails (kind tls)', async () => {
    const upstream = await startUpstream(true);
    const proxy = await startProxy('http');
    const cache = new UpstreamAgentCache({ handshakeTimeoutMs: 2_000 });
    cleanups.push(() => cache.destroy());
    const { error } = await failure(get(cache.agentsFor(endpointOf(proxy)), `${upstream.url}/hello`));
    const tunnelError = expectTunnelError(error, 'tls', proxy);
    expect(tunnelError.message).toContain(`localhost:${upstream.port}`);
  });

  it('checks the target name through the tunnel: a certificate for another name fails', async () => {
    const upstream = await startUpstream(true);
    const proxy = await startProxy('socks5h');
    const agent = new TunnelHttpsAgent(endpointOf(proxy), {
      ca: cert.cert,
      checkServerIdentity: () => new Error('certificate is for another host'),
    });
    cleanups.push(() => agent.destroy());
    const { error } = await failure(get({ http: new http.Agent(), https: agent }, `${upstream.url}/hello`));
    expectTunnelError(error, 'tls', proxy);
  });

  it.each<ProxyScheme>(['http', 'socks5'])(
    'a %s proxy that cannot reach the target fails (kind refused)',
    async (scheme) => {
      const gone = await startUpstream(false);
      await cleanups.pop()?.();
      const proxy = await startProxy(scheme);
      const { error } = await failure(get(agentCache().agentsFor(endpointOf(proxy)), `${gone.url}/hello`));
      const tunnelError = expectTunnelError(error, 'refused', proxy);
      expect(tunnelError.message).toMatch(
        scheme === 'http'
          ? /answered 502 to CONNECT/
          : /could not open a tunnel to the target \(SOCKS reply 5\)/,
      );
    },
  );

  it('closing the agents abandons tunnels still opening', async () => {
    const upstream = await startUpstream(true);
    const proxy = await startProxy('socks5', { hang: true });
    const cache = agentCache(10_000);
    const pending = failure(get(cache.agentsFor(endpointOf(proxy)), `${upstream.url}/hello`));
    await vi.waitFor(() => expect(proxy.openConnections).toBe(1));
    cache.destroy();
    const { error, ms } = await pending;
    expectTunnelError(error, 'connect', proxy);
    expect(ms).toBeLessThan(2_000);
    await vi.waitFor(() => expect(proxy.openConnections).toBe(0));
  });
});

describe('UpstreamAgentCache', () => {
  it('gives direct agents for no proxy and one pair of tunnel agents per proxy and credentials', () => {
    const cache = agentCache();
    const direct = cache.agentsFor(undefined);
    expect(direct.https).not.toBeInstanceOf(TunnelHttpsAgent);
    expect(cache.agentsFor()).toBe(direct);
    const a = parseProxyUrl('socks5://u:p@127.0.0.1:1080', 'f');
    expect(cache.agentsFor(a)).toBe(cache.agentsFor(parseProxyUrl('socks5://u:p@127.0.0.1:1080', 'f')));
    expect(cache.agentsFor(a)).not.toBe(cache.agentsFor(parseProxyUrl('socks5://u:q@127.0.0.1:1080', 'f')));
    expect(cache.agentsFor(a)).not.toBe(cache.agentsFor(parseProxyUrl('socks5h://u:p@127.0.0.1:1080', 'f')));
    expect(cache.agentsFor(a).https).toBeInstanceOf(TunnelHttpsAgent);
    expect((cache.agentsFor(a).https as InstanceType<typeof TunnelHttpsAgent>).proxy).toBe(a);
  });
});

describe('NodeUpstreamClient through a tunnel (the request names its proxy)', () => {
  /** The real client, trusting the test certificate (closed after the test). */
  function client(): NodeUpstreamClient {
    const c = new NodeUpstreamClient({ ca: cert.cert });
    cleanups.push(() => c.close());
    return c;
  }
  const send = (
    c: NodeUpstreamClient,
    url: string,
    proxy: ProxyEndpoint,
    { firstByteTimeoutMs = 5_000, connectTimeoutMs = 1_000 } = {},
  ) =>
    c.send({
      url: new URL(url),
      method: 'GET',
      headers: {},
      body: undefined,
      signal: new AbortController().signal,
      connectTimeoutMs,
      firstByteTimeoutMs,
      proxy,
    });

  it('streams an answer through an authenticated https:// proxy', async () => {
    const upstream = await startUpstream(true);
    const proxy = await startProxy('https', { auth: true });
    const res = await send(client(), `${upstream.url}/stream`, endpointOf(proxy, CREDENTIALS));
    expect(res.status).toBe(200);
    const chunks = res.body[Symbol.asyncIterator]();
    expect(String((await chunks.next()).value)).toBe('first\n');
    upstream.release();
    expect(String((await chunks.next()).value)).toBe('second\n');
    expect((await chunks.next()).done).toBe(true);
    expect(proxy.tunnels).toBe(1);
  });

  it('a proxy hanging in the handshake is a proxy error, bounded by the connect timeout', async () => {
    const upstream = await startUpstream(true);
    const proxy = await startProxy('http', { hang: true });
    const { error, ms } = await failure(
      send(client(), `${upstream.url}/hello`, endpointOf(proxy, CREDENTIALS), {
        connectTimeoutMs: HANDSHAKE_TIMEOUT_MS,
      }),
    );
    expect(error).toBeInstanceOf(UpstreamError);
    expect((error as UpstreamError).kind).toBe('proxy');
    expectTunnelError(error.cause, 'timeout', proxy);
    expectNoPassword(error);
    expect(ms).toBeLessThan(HANDSHAKE_TIMEOUT_MS + 1_500);
    await vi.waitFor(() => expect(proxy.openConnections).toBe(0));
  });

  it('a request given up during the handshake leaves no connection behind', async () => {
    const upstream = await startUpstream(true);
    const proxy = await startProxy('socks5h', { hang: true });
    // The client's first-byte timer fires first; the handshake still ends at its own bound.
    const { error } = await failure(
      send(client(), `${upstream.url}/hello`, endpointOf(proxy), {
        firstByteTimeoutMs: 50,
        connectTimeoutMs: HANDSHAKE_TIMEOUT_MS,
      }),
    );
    expect((error as UpstreamError).kind).toBe('first_byte_timeout');
    await vi.waitFor(() => expect(proxy.openConnections).toBe(0));
  });

  it('a proxy refusing the credentials is a proxy error naming the proxy only', async () => {
    const upstream = await startUpstream(true);
    const proxy = await startProxy('socks5h', { auth: true });
    const wrong: ProxyEndpoint = endpointOf(proxy, { username: USER, password: 'nope' });
    const { error } = await failure(send(client(), `${upstream.url}/hello`, wrong));
    expect((error as UpstreamError).kind).toBe('proxy');
    expect(error.message).toBe(`proxy socks5h://127.0.0.1:${proxy.port}: refused authentication`);
  });
});
