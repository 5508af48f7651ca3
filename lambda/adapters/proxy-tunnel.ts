// Tunnels to Gemini through an outbound proxy: HTTP CONNECT (over TLS for an https:// proxy) or SOCKS5
// (RFC 1928, username/password per RFC 1929), as node:http(s) keep-alive agents. Hand-written: the
// libraries for this cost 16-520 KiB of bundle, and the Lambda bundle has about 5 KiB to spare.
import { lookup } from 'node:dns/promises';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { describeProxy, type ProxyEndpoint } from '../core/upstream-proxy.js';

/**
 * Why a tunnel could not be opened. Every kind is a transient network failure for the caller.
 * - `connect`: the proxy could not be reached (refused, reset, its TLS failed), or the agent was closed.
 * - `auth`: the proxy refused the credentials (HTTP 407, SOCKS5 authentication) or wants some.
 * - `refused`: the proxy would not or could not open the tunnel (a non-2xx answer to CONNECT, a SOCKS5
 *   reply code), or it closed the connection during the handshake.
 * - `protocol`: the proxy's answer could not be understood.
 * - `resolve`: the target's name did not resolve (`socks5://`, which resolves it here).
 * - `timeout`: the tunnel, with the target's TLS handshake, was not ready in time.
 * - `tls`: the TLS handshake with the target through the tunnel failed.
 */
export type ProxyTunnelFailure = 'connect' | 'auth' | 'refused' | 'protocol' | 'resolve' | 'timeout' | 'tls';

/**
 * A tunnel that could not be opened. The message names the proxy as `scheme://host:port` only: never
 * its credentials, and never what the proxy answered beyond a status or reply code.
 */
export class ProxyTunnelError extends Error {
  constructor(
    readonly kind: ProxyTunnelFailure,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'ProxyTunnelError';
  }
}

/** TLS settings a test (or an unusual deployment) may override; the defaults verify against the system CAs. */
export interface TlsOverrides {
  readonly ca?: string | Buffer | Array<string | Buffer> | undefined;
  readonly rejectUnauthorized?: boolean | undefined;
}

/** Settings of a tunnel agent beyond those of node's `http.Agent`. */
export interface TunnelSettings {
  /**
   * Bound on opening a tunnel, in ms: TCP (and TLS) to the proxy, the CONNECT or SOCKS5 exchange and,
   * for an https target, the TLS handshake with it. A request may set its own with
   * {@link TunnelRequestOptions.connectTimeoutMs}. Default {@link DEFAULT_HANDSHAKE_TIMEOUT_MS}.
   */
  readonly handshakeTimeoutMs?: number | undefined;
  /** TLS settings for the connection to an `https://` proxy. */
  readonly proxyTls?: TlsOverrides | undefined;
}

/**
 * What `http.request`/`https.request` may carry, beside the usual options, for a tunnel agent: node
 * hands unknown request options on to the agent.
 */
export interface TunnelRequestOptions {
  /** This request's bound on opening a new tunnel (see {@link TunnelSettings.handshakeTimeoutMs}). */
  readonly connectTimeoutMs?: number | undefined;
}

/** The default bound on opening a tunnel: `upstream.connect_timeout_ms`'s default. */
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 5_000;

/** Keep-alive settings of every upstream agent, direct or tunnelled (as the direct client has them). */
const KEEP_ALIVE = { keepAlive: true, keepAliveMsecs: 10_000, scheduling: 'lifo' } as const;
/** Longest answer to CONNECT (status line and headers) read before giving up on it. */
const MAX_CONNECT_ANSWER_BYTES = 16 * 1024;
const HEAD_END = Buffer.from('\r\n\r\n');
/** A target host as node's client gives it: an ASCII host name or an IP address. */
const TARGET_HOST = /^[A-Za-z0-9._:-]+$/;
const SOCKS_REPLIES: Record<number, string> = {
  1: 'general failure',
  2: 'not allowed by its rules',
  3: 'network unreachable',
  4: 'host unreachable',
  5: 'connection refused',
  6: 'TTL expired',
  7: 'command not supported',
  8: 'address type not supported',
};

type ConnectCallback = (err: Error | null, stream: Duplex) => void;
/** Where a tunnel leads, and the TLS to start there (https targets). */
interface Target {
  readonly host: string;
  readonly port: number;
  readonly tls?: tls.ConnectionOptions | undefined;
}
interface OpenSettings {
  readonly timeoutMs: number;
  readonly keepAliveMsecs: number;
  readonly proxyTls: TlsOverrides | undefined;
}

/**
 * An `http.Agent` whose connections are tunnels through `proxy` (always tunnelled, plain http targets
 * included), pooled and kept alive like direct ones. Its sockets reach the request only once the tunnel
 * is open: the request's `socket` event comes after the whole handshake, which the agent bounds itself
 * (see {@link TunnelSettings.handshakeTimeoutMs}); failures are {@link ProxyTunnelError}s on the request.
 */
export class TunnelHttpAgent extends http.Agent {
  private readonly tunnels: TunnelOpener;

  constructor(
    readonly proxy: ProxyEndpoint,
    options: http.AgentOptions & TunnelSettings = {},
  ) {
    const { handshakeTimeoutMs, proxyTls, ...agentOptions } = options;
    super({ ...KEEP_ALIVE, ...agentOptions });
    const keepAliveMsecs = agentOptions.keepAliveMsecs ?? KEEP_ALIVE.keepAliveMsecs;
    this.tunnels = new TunnelOpener(proxy, handshakeTimeoutMs, proxyTls, keepAliveMsecs);
  }

  override createConnection(options: http.ClientRequestArgs, callback?: ConnectCallback): undefined {
    this.tunnels.open(options, undefined, callback);
  }

  /** Closes pooled sockets and abandons tunnels still being opened. */
  override destroy(): void {
    this.tunnels.abandonAll();
    super.destroy();
  }
}

/**
 * The `https.Agent` counterpart of {@link TunnelHttpAgent}: TLS with the target runs end to end through
 * the tunnel, verified as a direct connection is (its `ca`, `rejectUnauthorized` and
 * `checkServerIdentity` options apply to the target).
 */
export class TunnelHttpsAgent extends https.Agent {
  private readonly tunnels: TunnelOpener;

  constructor(
    readonly proxy: ProxyEndpoint,
    options: https.AgentOptions & TunnelSettings = {},
  ) {
    const { handshakeTimeoutMs, proxyTls, ...agentOptions } = options;
    super({ ...KEEP_ALIVE, ...agentOptions });
    const keepAliveMsecs = agentOptions.keepAliveMsecs ?? KEEP_ALIVE.keepAliveMsecs;
    this.tunnels = new TunnelOpener(proxy, handshakeTimeoutMs, proxyTls, keepAliveMsecs);
  }

  override createConnection(options: https.RequestOptions, callback?: ConnectCallback): undefined {
    // The agent's options are merged in: TLS settings given to the constructor arrive here.
    const targetTls = defined<tls.ConnectionOptions>({
      ca: options.ca,
      rejectUnauthorized: options.rejectUnauthorized,
      checkServerIdentity: options.checkServerIdentity,
      minVersion: options.minVersion,
      maxVersion: options.maxVersion,
      servername: options.servername || undefined,
    });
    this.tunnels.open(options, targetTls, callback);
  }

  /** Closes pooled sockets and abandons tunnels still being opened. */
  override destroy(): void {
    this.tunnels.abandonAll();
    super.destroy();
  }
}

/** The two agents a request to Gemini picks from, by the target URL's scheme. */
export interface UpstreamAgents {
  readonly http: http.Agent;
  readonly https: https.Agent;
}

/** Settings for every agent of an {@link UpstreamAgentCache}. */
export interface UpstreamAgentSettings extends TunnelSettings {
  /** TLS settings for the connection to Gemini (the target), direct or tunnelled: a test's `ca`. */
  readonly targetTls?: TlsOverrides | undefined;
}

/**
 * Keep-alive agents per outbound proxy: direct ones for no proxy, tunnel agents for each proxy (one
 * pool per proxy and credentials). Owned by one client, which calls {@link destroy} on close.
 */
export class UpstreamAgentCache {
  private direct: UpstreamAgents | undefined;
  private readonly tunnelled = new Map<string, UpstreamAgents>();

  constructor(private readonly settings: UpstreamAgentSettings = {}) {}

  /** The agents for `proxy`, made on first use; the direct ones when `proxy` is undefined. */
  agentsFor(proxy?: ProxyEndpoint): UpstreamAgents {
    if (proxy === undefined) {
      this.direct ??= {
        http: new http.Agent(KEEP_ALIVE),
        https: new https.Agent({ ...KEEP_ALIVE, ...defined({ ...this.settings.targetTls }) }),
      };
      return this.direct;
    }
    // In memory only: the key is never shown.
    const key = JSON.stringify([
      proxy.scheme,
      proxy.host,
      proxy.port,
      proxy.auth?.username,
      proxy.auth?.password,
    ]);
    let agents = this.tunnelled.get(key);
    if (agents === undefined) {
      const tunnel = {
        handshakeTimeoutMs: this.settings.handshakeTimeoutMs,
        proxyTls: this.settings.proxyTls,
      };
      agents = {
        http: new TunnelHttpAgent(proxy, tunnel),
        https: new TunnelHttpsAgent(proxy, { ...tunnel, ...defined({ ...this.settings.targetTls }) }),
      };
      this.tunnelled.set(key, agents);
    }
    return agents;
  }

  /** Closes every agent's sockets (on shutdown); agents asked for later are new ones. */
  destroy(): void {
    for (const agents of [this.direct, ...this.tunnelled.values()]) {
      agents?.http.destroy();
      agents?.https.destroy();
    }
    this.direct = undefined;
    this.tunnelled.clear();
  }
}

/** Opens tunnels through one proxy for an agent, and keeps track of those still opening. */
class TunnelOpener {
  private readonly opening = new Set<(reason: ProxyTunnelError) => void>();

  constructor(
    private readonly proxy: ProxyEndpoint,
    private readonly handshakeTimeoutMs: number | undefined,
    private readonly proxyTls: TlsOverrides | undefined,
    private readonly keepAliveMsecs: number,
  ) {}

  open(
    options: http.ClientRequestArgs & TunnelRequestOptions,
    targetTls: tls.ConnectionOptions | undefined,
    callback: ConnectCallback | undefined,
  ): void {
    if (callback === undefined) throw new TypeError('a tunnel agent hands its sockets to a callback');
    const host = String(options.host ?? 'localhost').replace(/^\[(.*)\]$/, '$1');
    const port = Number(options.port);
    const settings: OpenSettings = {
      timeoutMs:
        positive(options.connectTimeoutMs) ??
        positive(this.handshakeTimeoutMs) ??
        DEFAULT_HANDSHAKE_TIMEOUT_MS,
      keepAliveMsecs: this.keepAliveMsecs,
      proxyTls: this.proxyTls,
    };
    const abandon = openTunnel(this.proxy, { host, port, tls: targetTls }, settings, (err, socket) => {
      this.opening.delete(abandon);
      callback(err, socket as Duplex);
    });
    this.opening.add(abandon);
  }

  abandonAll(): void {
    const reason = new ProxyTunnelError(
      'connect',
      `the agent for proxy ${describeProxy(this.proxy)} was closed`,
    );
    for (const abandon of [...this.opening]) abandon(reason);
  }
}

const positive = (ms: number | undefined) => (ms !== undefined && ms > 0 ? ms : undefined);

/**
 * `options` without its undefined entries. TLS options must not carry an explicit `undefined`:
 * `tls.connect` spreads them over its defaults (`checkServerIdentity: undefined` fails an assertion in it).
 */
function defined<T extends object>(options: T): T {
  return Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined)) as T;
}

/**
 * Opens one tunnel to `target` through `proxy` and hands the ready socket (TLS with the target done, for
 * an https target) to `done`, or a {@link ProxyTunnelError}, once, within `settings.timeoutMs`.
 * Returns a function that abandons the attempt.
 */
function openTunnel(
  proxy: ProxyEndpoint,
  target: Target,
  settings: OpenSettings,
  done: (err: Error | null, socket?: net.Socket) => void,
): (reason: ProxyTunnelError) => void {
  const opened: net.Socket[] = [];
  let finished = false;
  const finish = (err: Error | null, socket?: net.Socket) => {
    if (finished) {
      socket?.destroy();
      return;
    }
    finished = true;
    clearTimeout(timer);
    if (err) for (const s of opened) s.destroy();
    done(err, socket);
  };
  const timer = setTimeout(() => {
    const message = `proxy ${describeProxy(proxy)} did not open a tunnel to ${authority(target)} within ${settings.timeoutMs} ms`;
    finish(new ProxyTunnelError('timeout', message));
  }, settings.timeoutMs);
  establish(proxy, target, settings, opened).then(
    (socket) => finish(null, socket),
    (err: unknown) => finish(asTunnelError(err, proxy)),
  );
  return (reason) => finish(reason);
}

async function establish(
  proxy: ProxyEndpoint,
  target: Target,
  settings: OpenSettings,
  opened: net.Socket[],
): Promise<net.Socket> {
  const name = describeProxy(proxy);
  if (!TARGET_HOST.test(target.host) || !(target.port > 0 && target.port < 65536)) {
    throw new ProxyTunnelError(
      'protocol',
      `no valid target host and port to open a tunnel to through proxy ${name}`,
    );
  }
  const socksAddress = proxy.scheme.startsWith('socks') ? await socksTargetAddress(proxy, target) : undefined;

  const { host, port } = proxy;
  const channel =
    proxy.scheme === 'https'
      ? tls.connect(defined({ host, port, ...settings.proxyTls, servername: serverName(host) }))
      : net.connect({ host, port });
  opened.push(channel);
  channel.setNoDelay(true);
  channel.setKeepAlive(true, settings.keepAliveMsecs);
  const steps = new SocketSteps(channel);
  try {
    await steps.ready(proxy.scheme === 'https' ? 'secureConnect' : 'connect');
  } catch (err) {
    throw new ProxyTunnelError('connect', `could not connect to proxy ${name}${codeOf(err)}`, { cause: err });
  }
  try {
    if (socksAddress) await socks5Handshake(steps, proxy, socksAddress, target.port);
    else await connectHandshake(steps, proxy, target);
  } catch (err) {
    if (err instanceof ProxyTunnelError) throw err;
    throw new ProxyTunnelError(
      'refused',
      `proxy ${name} dropped the connection during the handshake${codeOf(err)}`,
      {
        cause: err,
      },
    );
  }
  steps.release();
  if (target.tls === undefined) return channel;

  const secure = tls.connect({ ...target.tls, socket: channel, host: target.host });
  opened.push(secure);
  const tlsSteps = new SocketSteps(secure);
  try {
    await tlsSteps.ready('secureConnect');
  } catch (err) {
    const message = `TLS with ${authority(target)} through proxy ${name} failed${codeOf(err)}`;
    throw new ProxyTunnelError('tls', message, { cause: err });
  }
  tlsSteps.release();
  // Closing the TLS socket (the pool does) closes the tunnel under it.
  secure.once('close', () => channel.destroy());
  return secure;
}

/** HTTP CONNECT: asks the proxy for a tunnel to the target; any 2xx opens it. */
async function connectHandshake(steps: SocketSteps, proxy: ProxyEndpoint, target: Target): Promise<void> {
  const name = describeProxy(proxy);
  const to = authority(target);
  const lines = [`CONNECT ${to} HTTP/1.1`, `Host: ${to}`];
  if (proxy.auth !== undefined) {
    const basic = Buffer.from(`${proxy.auth.username}:${proxy.auth.password}`).toString('base64');
    lines.push(`Proxy-Authorization: Basic ${basic}`);
  }
  steps.write(Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1'));
  const head = await steps.readHead(name);
  const status = /^HTTP\/1\.[01] (\d{3})[ \r]/.exec(head.toString('latin1'));
  if (status === null)
    throw new ProxyTunnelError('protocol', `proxy ${name} did not answer CONNECT in HTTP/1.x`);
  const code = Number(status[1]);
  if (code === 407) throw new ProxyTunnelError('auth', `proxy ${name} refused authentication (407)`);
  if (code < 200 || code > 299) {
    throw new ProxyTunnelError('refused', `proxy ${name} answered ${code} to CONNECT ${to}`);
  }
}

/** SOCKS5 CONNECT (RFC 1928), with username/password authentication (RFC 1929) when configured. */
async function socks5Handshake(
  steps: SocketSteps,
  proxy: ProxyEndpoint,
  address: Buffer,
  port: number,
): Promise<void> {
  const name = describeProxy(proxy);
  const methods = proxy.auth === undefined ? [0x00] : [0x00, 0x02];
  steps.write(Buffer.from([0x05, methods.length, ...methods]));
  const [version, method] = await steps.read(2);
  if (version !== 0x05) throw new ProxyTunnelError('protocol', `proxy ${name} did not answer in SOCKS5`);
  if (method === 0xff) {
    const why =
      proxy.auth === undefined
        ? 'requires authentication'
        : 'accepts none of the offered authentication methods';
    throw new ProxyTunnelError('auth', `proxy ${name} ${why}`);
  }
  if (method === 0x02 && proxy.auth !== undefined) {
    const username = Buffer.from(proxy.auth.username);
    const password = Buffer.from(proxy.auth.password);
    if (username.length > 255 || password.length > 255) {
      throw new ProxyTunnelError('auth', `credentials for proxy ${name} are too long for SOCKS5`);
    }
    steps.write(
      Buffer.concat([
        Buffer.from([0x01, username.length]),
        username,
        Buffer.from([password.length]),
        password,
      ]),
    );
    const [, status] = await steps.read(2);
    if (status !== 0x00) throw new ProxyTunnelError('auth', `proxy ${name} refused authentication`);
  } else if (method !== 0x00) {
    throw new ProxyTunnelError(
      'protocol',
      `proxy ${name} chose an authentication method that was not offered`,
    );
  }

  const request = Buffer.alloc(3 + address.length + 2);
  request.set([0x05, 0x01, 0x00]);
  request.set(address, 3);
  request.writeUInt16BE(port, 3 + address.length);
  steps.write(request);
  const [replyVersion, reply, , boundType] = await steps.read(4);
  if (replyVersion !== 0x05) throw new ProxyTunnelError('protocol', `proxy ${name} did not answer in SOCKS5`);
  if (reply !== 0x00) {
    const why = SOCKS_REPLIES[reply ?? 1] ?? 'failure';
    throw new ProxyTunnelError(
      'refused',
      `proxy ${name} could not connect to the target: ${why} (SOCKS reply ${reply})`,
    );
  }
  // The bound address and port follow; nothing uses them, but they must be read off the stream.
  if (boundType === 0x01) await steps.read(4 + 2);
  else if (boundType === 0x04) await steps.read(16 + 2);
  else if (boundType === 0x03) await steps.read((await steps.read(1))[0]! + 2);
  else throw new ProxyTunnelError('protocol', `proxy ${name} answered with an unknown address type`);
}

/**
 * The target as SOCKS5 addresses it (ATYP and address): the name itself for `socks5h://` (the proxy
 * resolves it), the address it resolves to here for `socks5://` (IPv4 preferred: one address can be
 * sent, and IPv4 is the one every network here reaches).
 */
async function socksTargetAddress(proxy: ProxyEndpoint, target: Target): Promise<Buffer> {
  let ip = target.host;
  if (net.isIP(ip) === 0) {
    if (proxy.scheme === 'socks5h') {
      const name = Buffer.from(target.host, 'latin1');
      if (name.length > 255)
        throw new ProxyTunnelError('protocol', 'the target host name is too long for SOCKS5');
      return Buffer.concat([Buffer.from([0x03, name.length]), name]);
    }
    try {
      const found = await lookup(target.host, { all: true });
      ip = (found.find((a) => a.family === 4) ?? found[0])?.address ?? '';
    } catch (err) {
      const message = `could not resolve ${target.host} for proxy ${describeProxy(proxy)}${codeOf(err)}`;
      throw new ProxyTunnelError('resolve', message, { cause: err });
    }
  }
  if (net.isIPv4(ip)) return Buffer.from([0x01, ...ip.split('.').map(Number)]);
  if (net.isIPv6(ip)) return Buffer.concat([Buffer.from([0x04]), ipv6Bytes(ip)]);
  throw new ProxyTunnelError('resolve', `could not resolve ${target.host} for proxy ${describeProxy(proxy)}`);
}

/** The 16 bytes of an IPv6 address in text (valid per `net.isIPv6`; `::` and a dotted IPv4 tail allowed). */
function ipv6Bytes(text: string): Buffer {
  const groups = (part: string): number[] =>
    part === ''
      ? []
      : part.split(':').flatMap((group) => {
          if (!group.includes('.')) return [Number.parseInt(group, 16)];
          const [a, b, c, d] = group.split('.').map(Number) as [number, number, number, number];
          return [(a << 8) | b, (c << 8) | d];
        });
  const [head = '', tail] = text.replace(/%.*$/, '').split('::');
  const before = groups(head);
  const after = tail === undefined ? [] : groups(tail);
  const all = [...before, ...new Array<number>(8 - before.length - after.length).fill(0), ...after];
  const bytes = Buffer.alloc(16);
  all.forEach((group, i) => {
    bytes.writeUInt16BE(group, i * 2);
  });
  return bytes;
}

/**
 * One socket's side of a handshake: waits for it to connect, reads exact byte counts, and hands it on
 * (listeners removed, unread bytes put back) with {@link release}. While it holds the socket, an error or
 * close fails the step waiting and every later one.
 */
class SocketSteps {
  private buffered: Buffer = Buffer.alloc(0);
  private failure: Error | undefined;
  private wake: (() => void) | undefined;
  private reading = false;

  constructor(private readonly socket: net.Socket) {
    socket.on('error', this.onError);
    socket.on('close', this.onClose);
  }

  private readonly onError = (err: Error) => {
    this.failure ??= err;
    this.notify();
  };
  private readonly onClose = () => {
    this.failure ??= new Error('connection closed');
    this.notify();
  };
  private readonly onReadable = () => {
    for (let chunk: Buffer | null; (chunk = this.socket.read() as Buffer | null) !== null; ) {
      this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    }
    this.notify();
  };

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  private async until(condition: () => boolean): Promise<void> {
    while (!condition()) {
      if (this.failure) throw this.failure;
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
    }
  }

  /** Waits for `connect` (TCP) or `secureConnect` (TLS). */
  async ready(event: 'connect' | 'secureConnect'): Promise<void> {
    let happened = false;
    const onEvent = () => {
      happened = true;
      this.notify();
    };
    this.socket.once(event, onEvent);
    try {
      await this.until(() => happened);
    } finally {
      this.socket.off(event, onEvent);
    }
  }

  write(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  /** The next `count` bytes. */
  async read(count: number): Promise<Buffer> {
    this.startReading();
    await this.until(() => this.buffered.length >= count);
    const bytes = this.buffered.subarray(0, count);
    this.buffered = this.buffered.subarray(count);
    return bytes;
  }

  /** An HTTP answer's head, through its blank line. */
  async readHead(proxyName: string): Promise<Buffer> {
    this.startReading();
    let end = -1;
    await this.until(() => {
      end = this.buffered.indexOf(HEAD_END);
      if (end < 0 && this.buffered.length > MAX_CONNECT_ANSWER_BYTES) {
        throw new ProxyTunnelError('protocol', `proxy ${proxyName} sent an overlong answer to CONNECT`);
      }
      return end >= 0;
    });
    return this.read(end + HEAD_END.length);
  }

  private startReading(): void {
    if (this.reading) return;
    this.reading = true;
    this.socket.on('readable', this.onReadable);
  }

  /** Hands the socket on: this object's listeners removed, bytes read past the handshake put back. */
  release(): void {
    this.socket.off('error', this.onError);
    this.socket.off('close', this.onClose);
    this.socket.off('readable', this.onReadable);
    if (this.buffered.length > 0) this.socket.unshift(this.buffered);
    this.buffered = Buffer.alloc(0);
  }
}

/** `host:port`, an IPv6 address in brackets. */
function authority(target: { host: string; port: number }): string {
  return `${net.isIPv6(target.host) ? `[${target.host}]` : target.host}:${target.port}`;
}

/** The name to send in SNI: none for an IP address. */
function serverName(host: string): string | undefined {
  return net.isIP(host) === 0 ? host : undefined;
}

/** ` (CODE)` for a node error with a code, else ''. The cause's message is left in the cause. */
function codeOf(err: unknown): string {
  const code = (err as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' && /^[A-Z0-9_]+$/.test(code) ? ` (${code})` : '';
}

function asTunnelError(err: unknown, proxy: ProxyEndpoint): ProxyTunnelError {
  if (err instanceof ProxyTunnelError) return err;
  return new ProxyTunnelError(
    'connect',
    `tunnel through proxy ${describeProxy(proxy)} failed${codeOf(err)}`,
    {
      cause: err,
    },
  );
}
