// The two handshakes that open a tunnel on a connection to the proxy: HTTP CONNECT and SOCKS5, and the
// error every failure to open one becomes. Used by the tunnel agents in proxy-tunnel.ts.
import { lookup } from 'node:dns/promises';
import net from 'node:net';
import type { ProxyAuth } from '../core/upstream-proxy.js';

/**
 * Why a tunnel could not be opened. Every kind is a transient network failure for the caller.
 * - `connect`: the proxy could not be reached (refused, reset, its own TLS failed), or the agent closed.
 * - `auth`: the proxy refused the credentials, or wants some (HTTP 407, SOCKS5 authentication).
 * - `refused`: the proxy would not or could not open the tunnel (a non-2xx answer to CONNECT, a SOCKS5
 *   reply code), or dropped the connection during the handshake.
 * - `protocol`: the proxy's answer could not be understood.
 * - `resolve`: the target's name did not resolve to an IPv4 address (`socks5://` resolves it here).
 * - `timeout`: the tunnel, the target's TLS handshake included, was not ready in time.
 * - `tls`: the TLS handshake with the target, through the tunnel, failed.
 */
export type ProxyTunnelFailure = 'connect' | 'auth' | 'refused' | 'protocol' | 'resolve' | 'timeout' | 'tls';

/**
 * A tunnel that could not be opened: `proxy scheme://host:port: what went wrong`. The message never has
 * the proxy's credentials, nor what the proxy answered beyond a status or reply code.
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

export type Fail = (kind: ProxyTunnelFailure, what: string, cause?: unknown) => ProxyTunnelError;

/** HTTP CONNECT: asks the proxy for a tunnel to `to` (`host:port`); any 2xx opens it. */
export async function connectHandshake(
  steps: SocketSteps,
  auth: ProxyAuth | undefined,
  to: string,
  fail: Fail,
) {
  const credentials = auth && Buffer.from(`${auth.username}:${auth.password}`).toString('base64');
  const authorization = credentials ? `Proxy-Authorization: Basic ${credentials}\r\n` : '';
  steps.write(Buffer.from(`CONNECT ${to} HTTP/1.1\r\nHost: ${to}\r\n${authorization}\r\n`));
  const code = Number(/^HTTP\/1\.[01] (\d\d\d)[ \r]/.exec(await steps.readHead(fail))?.[1]);
  if (!code) throw fail('protocol', 'did not follow the HTTP CONNECT protocol');
  if (code === 407) throw fail('auth', 'refused authentication (407)');
  if (code < 200 || code > 299) throw fail('refused', `answered ${code} to CONNECT ${to}`);
}

/** SOCKS5 CONNECT (RFC 1928), with username/password authentication (RFC 1929) when configured. */
export async function socks5Handshake(
  steps: SocketSteps,
  auth: ProxyAuth | undefined,
  address: Buffer,
  port: number,
  fail: Fail,
) {
  const broken = () => fail('protocol', 'did not follow the SOCKS5 protocol');
  const refused = () => fail('auth', 'refused authentication');
  steps.write(Buffer.from(auth ? [5, 2, 0, 2] : [5, 1, 0]));
  const [version, method] = await steps.read(2);
  if (version !== 5) throw broken();
  if (method === 0xff) throw refused();
  if (method === 2 && auth) {
    // Each fits its length byte: parseProxyUrl refuses longer SOCKS5 credentials.
    const username = Buffer.from(auth.username);
    const password = Buffer.from(auth.password);
    steps.write(
      Buffer.concat([Buffer.from([1, username.length]), username, Buffer.from([password.length]), password]),
    );
    if ((await steps.read(2))[1]) throw refused();
  } else if (method) {
    throw broken();
  }

  steps.write(Buffer.concat([Buffer.from([5, 1, 0]), address, Buffer.from([port >> 8, port & 255])]));
  const [replyVersion, reply, , boundType] = await steps.read(4);
  if (replyVersion !== 5) throw broken();
  if (reply) throw fail('refused', `could not open a tunnel to the target (SOCKS reply ${reply})`);
  // The bound address (IPv4, domain name or IPv6) and port follow: unused, but read off the stream.
  if (boundType === 3) await steps.read((await steps.read(1))[0]! + 2);
  else if (boundType === 1 || boundType === 4) await steps.read(boundType * 4 + 2);
  else throw broken();
}

/**
 * The target as a SOCKS5 address (type and bytes): for `socks5h://` its name (the proxy resolves it);
 * for `socks5://` the IPv4 address it resolves to here (one address can be sent: IPv4 is the one that
 * every network reaches). An IPv4 address stays one.
 */
export async function socksAddress(remoteDns: boolean, host: string): Promise<Buffer> {
  if (net.isIPv4(host) || !remoteDns) {
    const { address } = await lookup(host, { family: 4 });
    if (!net.isIPv4(address)) throw new Error('no IPv4 address');
    return Buffer.from([1, ...address.split('.').map(Number)]);
  }
  const name = Buffer.from(host);
  return Buffer.concat([Buffer.from([3, name.length]), name]);
}

/** One socket's side of a handshake (see {@link socketSteps}). */
export interface SocketSteps {
  write(bytes: Buffer): void;
  /** The next `count` bytes. */
  read(count: number): Promise<Buffer>;
  /** An HTTP answer's head through its blank line (at most 16 KiB), as latin1 text. */
  readHead(fail: Fail): Promise<string>;
  /** Hands the socket on: these listeners removed, the bytes read past the handshake put back. */
  release(): void;
}

/**
 * Takes `socket` for a handshake: reads exact byte counts off it, and hands it on with `release()`. Until
 * then, an error or close fails the waiting read and every later one. (A closure rather than a class: its
 * names minify.)
 */
export function socketSteps(socket: net.Socket): SocketSteps {
  let buffered = Buffer.alloc(0);
  let failure: Error | undefined;
  let wake = () => {};
  const onError = (err?: unknown) => {
    failure ??= err instanceof Error ? err : new Error('connection closed');
    wake();
  };
  const onReadable = () => {
    let chunk: Buffer | null = socket.read();
    while (chunk) {
      buffered = Buffer.concat([buffered, chunk]);
      chunk = socket.read();
    }
    wake();
  };
  /** Resolves once `condition` holds; rejects on the socket's error or close. */
  const until = async (condition: () => boolean) => {
    while (!condition()) {
      if (failure) throw failure;
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
    }
  };
  const read = async (count: number) => {
    socket.off('readable', onReadable).on('readable', onReadable);
    await until(() => buffered.length >= count);
    const bytes = buffered.subarray(0, count);
    buffered = buffered.subarray(count);
    return bytes;
  };
  socket.on('error', onError).on('close', onError);

  return {
    write: (bytes) => socket.write(bytes),
    read,
    async readHead(fail) {
      let end = -1;
      await read(0); // starts reading
      await until(() => {
        end = buffered.indexOf('\r\n\r\n');
        if (end < 0 && buffered.length > 16_384) throw fail('protocol', 'answered CONNECT with over 16 KiB');
        return end >= 0;
      });
      return (await read(end + 4)).toString('latin1');
    },
    release() {
      socket.off('error', onError).off('close', onError).off('readable', onReadable);
      if (buffered.length) socket.unshift(buffered);
    },
  };
}
