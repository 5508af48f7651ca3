// Tunnels to Gemini through an outbound proxy: HTTP CONNECT (over TLS for an https:// proxy) or SOCKS5
// (RFC 1928, username/password per RFC 1929), as node:http(s) keep-alive agents. Hand-written, and kept
// small on purpose (about 6 KiB minified with upstream-proxy.ts): the libraries for this add from 16 KiB
// (https-proxy-agent alone) to 520 KiB (undici) to a Lambda bundle that must stay under 350 KiB.
import { once } from 'node:events';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { describeProxy, hostPort, type ProxyEndpoint } from '../core/upstream-proxy.js';
import {
  connectHandshake,
  type Fail,
  ProxyTunnelError,
  type ProxyTunnelFailure,
  socketSteps,
  socks5Handshake,
  socksAddress,
} from './proxy-handshakes.js';

/** TLS settings a test (or an unusual deployment) may set; by default the system CAs verify the peer. */
export interface TlsOverrides {
  readonly ca?: string | Buffer | Array<string | Buffer> | undefined;
  readonly rejectUnauthorized?: boolean | undefined;
}

/** Settings of a tunnel agent beyond those of node's agents. */
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

/** What an `http(s).request` may add to its options for a tunnel agent (node passes them on to it). */
export interface TunnelRequestOptions {
  /** This request's bound on opening a new tunnel (see {@link TunnelSettings.handshakeTimeoutMs}). */
  readonly connectTimeoutMs?: number | undefined;
}

/** The default bound on opening a tunnel: the default of `upstream.connect_timeout_ms`. */
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 5_000;

/** Keep-alive settings of every upstream agent, direct or tunnelled, as the direct client has them. */
const KEEP_ALIVE = { keepAlive: true, keepAliveMsecs: 10_000, scheduling: 'lifo' } as const;
// biome-ignore lint/suspicious/noExplicitAny: a mixin's base must take any[]
type AgentClass = new (...args: any[]) => http.Agent;
type Callback = (err: Error | null, stream: Duplex) => void;

/** Where a tunnel leads, and the TLS to start there (https targets). */
interface Target {
  readonly host: string;
  readonly port: number;
  readonly tls?: tls.ConnectionOptions | undefined;
}

/** A tunnel agent class: node's `Base` agent whose connections are tunnels through its `proxy`. */
function tunnelAgent<Base extends AgentClass>(Base: Base, secure: boolean) {
  return class extends Base {
    readonly proxy: ProxyEndpoint;
    readonly #opening = new Set<(reason: Error) => void>();

    // biome-ignore lint/suspicious/noExplicitAny: a mixin's constructor must take any[]
    constructor(...args: any[]) {
      // Node keeps the options (TunnelSettings included) and merges them into createConnection's.
      super({ ...KEEP_ALIVE, ...args[1] });
      this.proxy = args[0];
    }

    override createConnection(
      options: https.RequestOptions & TunnelRequestOptions & TunnelSettings,
      callback?: Callback,
    ): undefined {
      const { host, port, ca, rejectUnauthorized, checkServerIdentity, servername, proxyTls } = options;
      const targetTls = defined({
        ca,
        rejectUnauthorized,
        checkServerIdentity,
        servername: servername || undefined,
      });
      const ms = options.connectTimeoutMs || options.handshakeTimeoutMs || DEFAULT_HANDSHAKE_TIMEOUT_MS;
      const target = { host: String(host), port: Number(port), tls: secure ? targetTls : undefined };
      const abandon = openTunnel(this.proxy, target, ms, proxyTls, (err, socket) => {
        this.#opening.delete(abandon);
        callback?.(err, socket as Duplex);
      });
      this.#opening.add(abandon);
    }

    /** Closes pooled sockets and abandons the tunnels still opening. */
    override destroy(): void {
      const reason = new ProxyTunnelError('connect', `proxy ${describeProxy(this.proxy)}: agent closed`);
      for (const abandon of [...this.#opening]) abandon(reason);
      super.destroy();
    }
  };
}

/** Constructor of the tunnel agents: the proxy, then node's agent options plus {@link TunnelSettings}. */
export interface TunnelAgentClass<Agent> {
  new (
    proxy: ProxyEndpoint,
    options?: https.AgentOptions & TunnelSettings,
  ): Agent & { readonly proxy: ProxyEndpoint };
}

/**
 * An `http.Agent` whose connections are tunnels through its proxy (plain http targets are tunnelled too),
 * pooled and kept alive like direct ones. A request gets its socket (the `socket` event) only once the
 * tunnel is open: the agent bounds the whole handshake itself ({@link TunnelSettings.handshakeTimeoutMs})
 * and fails the request with a {@link ProxyTunnelError}.
 */
export const TunnelHttpAgent: TunnelAgentClass<http.Agent> = tunnelAgent(http.Agent, false);

/**
 * The `https.Agent` counterpart of {@link TunnelHttpAgent}: TLS with the target runs end to end through
 * the tunnel, verified as a direct connection is (the agent's `ca`, `rejectUnauthorized` and
 * `checkServerIdentity` apply to the target; the socket it hands over has finished that handshake).
 */
export const TunnelHttpsAgent: TunnelAgentClass<https.Agent> = tunnelAgent(https.Agent, true);

/** The two agents a request to Gemini picks from, by the target URL's scheme. */
export interface UpstreamAgents {
  readonly http: http.Agent;
  readonly https: https.Agent;
}

/** Settings for every agent of an {@link UpstreamAgentCache}. */
export interface UpstreamAgentSettings extends TunnelSettings {
  /** TLS settings for connections to Gemini (the target), direct or tunnelled: a test's `ca`. */
  readonly targetTls?: TlsOverrides | undefined;
}

/**
 * Keep-alive agents by outbound proxy: direct ones for no proxy, and a pair of tunnel agents (one pool)
 * per proxy and credentials. Owned by one client, which calls {@link destroy} when it closes.
 */
export class UpstreamAgentCache {
  readonly #agents = new Map<string, UpstreamAgents>();
  readonly #settings: UpstreamAgentSettings;

  constructor(settings: UpstreamAgentSettings = {}) {
    this.#settings = settings;
  }

  /** The agents for `proxy`, made on first use; the direct ones when `proxy` is undefined. */
  agentsFor(proxy?: ProxyEndpoint): UpstreamAgents {
    // In memory only: the key is never shown.
    const key = proxy
      ? JSON.stringify([describeProxy(proxy), proxy.auth?.username, proxy.auth?.password])
      : '';
    let agents = this.#agents.get(key);
    if (!agents) {
      const { targetTls, ...tunnel } = this.#settings;
      const secure = defined({ ...KEEP_ALIVE, ...tunnel, ...targetTls });
      agents = proxy
        ? { http: new TunnelHttpAgent(proxy, tunnel), https: new TunnelHttpsAgent(proxy, secure) }
        : {
            http: new http.Agent(KEEP_ALIVE),
            https: new https.Agent(defined({ ...KEEP_ALIVE, ...targetTls })),
          };
      this.#agents.set(key, agents);
    }
    return agents;
  }

  /** Closes every agent's sockets (on shutdown); agents asked for later are new ones. */
  destroy(): void {
    for (const { http, https } of this.#agents.values()) {
      http.destroy();
      https.destroy();
    }
    this.#agents.clear();
  }
}

/**
 * `options` without its undefined entries. TLS options must not carry an explicit `undefined`:
 * `tls.connect` spreads them over its defaults (`checkServerIdentity: undefined` fails an assertion in it).
 */
function defined<T extends object>(options: T): T {
  return Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined)) as T;
}

/**
 * Opens one tunnel to `target` through `proxy`, and hands `done` the ready socket (TLS with the target
 * done, for an https target) or a {@link ProxyTunnelError}, once, within `timeoutMs`. Returns a function
 * that abandons the attempt.
 */
function openTunnel(
  proxy: ProxyEndpoint,
  target: Target,
  timeoutMs: number,
  proxyTls: TlsOverrides | undefined,
  done: (err: Error | null, socket?: net.Socket) => void,
): (reason: Error) => void {
  const opened: net.Socket[] = [];
  const to = hostPort(target.host, target.port);
  const fail: Fail = (kind, what, cause) =>
    new ProxyTunnelError(kind, `proxy ${describeProxy(proxy)}: ${what}`, cause ? { cause } : undefined);
  let finished = false;
  const finish = (err: Error | null, socket?: net.Socket) => {
    if (finished) return void socket?.destroy();
    finished = true;
    clearTimeout(timer);
    if (err) for (const s of opened) s.destroy();
    done(err, socket);
  };
  const timer = setTimeout(
    () => finish(fail('timeout', `no tunnel to ${to} within ${timeoutMs} ms`)),
    timeoutMs,
  );

  // What a failure other than a ProxyTunnelError means, by stage.
  let kind: ProxyTunnelFailure = 'resolve';
  let what = `could not resolve ${target.host}`;
  const establish = async (): Promise<net.Socket> => {
    const socks = proxy.scheme.startsWith('socks')
      ? await socksAddress(proxy.scheme === 'socks5h', target.host)
      : undefined;

    [kind, what] = ['connect', 'could not connect'];
    const { host, port } = proxy;
    const channel =
      proxy.scheme === 'https'
        ? tls.connect(defined({ host, port, ...proxyTls, servername: net.isIP(host) ? undefined : host }))
        : net.connect({ host, port });
    opened.push(channel);
    channel.setNoDelay(true).setKeepAlive(true, KEEP_ALIVE.keepAliveMsecs);
    const steps = socketSteps(channel);
    await once(channel, proxy.scheme === 'https' ? 'secureConnect' : 'connect');

    [kind, what] = ['refused', 'dropped the handshake'];
    await (socks
      ? socks5Handshake(steps, proxy.auth, socks, target.port, fail)
      : connectHandshake(steps, proxy.auth, to, fail));
    steps.release();
    if (!target.tls) return channel;

    [kind, what] = ['tls', `TLS with ${to} failed`];
    const secure = tls.connect({ ...target.tls, socket: channel, host: target.host });
    opened.push(secure);
    await once(secure, 'secureConnect');
    // The pool closes the TLS socket: the tunnel under it goes with it.
    secure.once('close', () => channel.destroy());
    return secure;
  };
  establish().then(
    (socket) => finish(null, socket),
    (err) => {
      const code = err.code ? ` (${err.code})` : '';
      finish(err instanceof ProxyTunnelError ? err : fail(kind, what + code, err));
    },
  );
  return finish;
}
