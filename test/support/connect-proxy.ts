// A real HTTP CONNECT proxy on 127.0.0.1 for tests: plain or over TLS, with optional Basic auth; it
// tunnels only to 127.0.0.1 and can hang in the handshake. Node built-ins only; never logs.
import http from 'node:http';
import https from 'node:https';
import type net from 'node:net';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { type TunnelDouble, TunnelSockets } from './tunnel-double.js';

export interface ConnectProxyOptions {
  /** Credentials the proxy requires (Basic); none required when absent. */
  auth?: { username: string; password: string };
  /** Serve over TLS (an `https://` proxy) with this key and certificate. */
  tls?: { key: string; cert: string };
  /** Accept connections and CONNECT requests but never answer them. */
  hang?: boolean;
}

/** A CONNECT proxy double: `url` is `http://` or `https://127.0.0.1:port`; tunnels are answered 200. */
export interface ConnectProxy extends TunnelDouble {
  /** CONNECT requests received, answered or not. */
  readonly requests: number;
  /** The `host:port` of every CONNECT request, in order. */
  readonly targets: readonly string[];
}

/** Starts a CONNECT proxy on 127.0.0.1 on a free port. */
export async function startConnectProxy(options: ConnectProxyOptions = {}): Promise<ConnectProxy> {
  const sockets = new TunnelSockets();
  const targets: string[] = [];
  const expected =
    options.auth &&
    `Basic ${Buffer.from(`${options.auth.username}:${options.auth.password}`).toString('base64')}`;

  const server = options.tls ? https.createServer({ ...options.tls }) : http.createServer();
  server.on('request', (_req, res) => {
    res.writeHead(405, { connection: 'close' }).end();
  });
  // The TCP connections, under TLS for an https proxy.
  server.on('connection', (socket: net.Socket) => {
    sockets.client(socket);
    socket.on('error', () => {});
  });
  server.on('tlsClientError', () => {});
  server.on('connect', (req: http.IncomingMessage, client: Duplex, head: Buffer) => {
    targets.push(req.url ?? '');
    client.on('error', () => {});
    // Hanging: read and drop what comes (so a client's close is seen), answer nothing.
    if (options.hang) {
      // node's server sockets allow half-open connections: close on the client's end.
      client.once('end', () => client.destroy());
      return void client.resume();
    }
    if (expected !== undefined && req.headers['proxy-authorization'] !== expected) {
      client.end(
        'HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="test"\r\n' +
          'Content-Length: 0\r\nConnection: close\r\n\r\n',
      );
      return;
    }
    const match = /^(127\.0\.0\.1|localhost):(\d+)$/.exec(req.url ?? '');
    if (!match) {
      client.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
      return;
    }
    sockets.splice(
      client as net.Socket,
      Number(match[2]),
      (upstream) => {
        client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
        // Bytes the client sent after the CONNECT head go to the target first.
        if (head.length > 0) upstream.write(head);
      },
      () => client.end('HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n'),
    );
  });

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `${options.tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    port,
    get requests() {
      return targets.length;
    },
    get tunnels() {
      return sockets.tunnels;
    },
    get openConnections() {
      return sockets.openClients;
    },
    targets,
    close: () => sockets.close(server),
  };
}
