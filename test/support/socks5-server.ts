// A real SOCKS5 server (RFC 1928, CONNECT only) on 127.0.0.1 for tests: no authentication or
// username/password (RFC 1929); targets by IPv4, IPv6 or domain name, tunnelled only to 127.0.0.1 (the
// name `localhost` included); can hang in the handshake. Node built-ins only; never logs.
import net, { type AddressInfo } from 'node:net';
import { type TunnelDouble, TunnelSockets } from './tunnel-double.js';

export interface Socks5ServerOptions {
  /** Credentials the server requires (method 0x02); no authentication (0x00) when absent. */
  auth?: { username: string; password: string };
  /** Accept connections but never answer the greeting. */
  hang?: boolean;
}

/** A CONNECT request as the server received it. */
export interface Socks5Request {
  /** The address type: 1 IPv4, 3 domain name, 4 IPv6. */
  readonly addressType: number;
  readonly host: string;
  readonly port: number;
}

/** A SOCKS5 server double: `url` is `socks5://127.0.0.1:port`; tunnels are CONNECTs answered with success. */
export interface Socks5Server extends TunnelDouble {
  /** Connections accepted. */
  readonly connections: number;
  /** Every CONNECT request received, in order. */
  readonly requests: readonly Socks5Request[];
}

/** Starts a SOCKS5 server on 127.0.0.1 on a free port. */
export async function startSocks5Server(options: Socks5ServerOptions = {}): Promise<Socks5Server> {
  const sockets = new TunnelSockets();
  const requests: Socks5Request[] = [];
  let connections = 0;

  const server = net.createServer((client) => {
    connections++;
    sockets.client(client);
    client.on('error', () => {});
    // Hanging: read and drop what comes (so a client's close is seen), answer nothing.
    if (options.hang) return void client.resume();
    serve(client).catch(() => client.destroy());
  });

  async function serve(client: net.Socket): Promise<void> {
    const read = reader(client);
    const [version, count] = await read(2);
    if (version !== 5) return void client.destroy();
    const methods = [...(await read(count!))];
    const wanted = options.auth ? 0x02 : 0x00;
    if (!methods.includes(wanted)) return void client.end(Buffer.from([5, 0xff]));
    client.write(Buffer.from([5, wanted]));
    if (options.auth) {
      const [, userLength] = await read(2);
      const username = (await read(userLength!)).toString();
      const [passLength] = await read(1);
      const password = (await read(passLength!)).toString();
      const ok = username === options.auth.username && password === options.auth.password;
      if (!ok) return void client.end(Buffer.from([1, 1]));
      client.write(Buffer.from([1, 0]));
    }
    const [, command, , addressType] = await read(4);
    let host: string;
    if (addressType === 1) host = [...(await read(4))].join('.');
    else if (addressType === 3) host = (await read((await read(1))[0]!)).toString('latin1');
    else if (addressType === 4) host = ipv6Text(await read(16));
    else return void client.end(reply(8));
    const port = (await read(2)).readUInt16BE(0);
    requests.push({ addressType, host, port });
    if (command !== 1) return void client.end(reply(7));
    if (host !== '127.0.0.1' && host !== 'localhost') return void client.end(reply(2));

    sockets.splice(
      client,
      port,
      (upstream) => {
        client.write(reply(0));
        // Bytes read past the request go to the target first.
        for (const chunk of read.rest()) upstream.write(chunk);
      },
      () => client.end(reply(5)),
    );
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `socks5://127.0.0.1:${port}`,
    port,
    get connections() {
      return connections;
    },
    get openConnections() {
      return sockets.openClients;
    },
    get tunnels() {
      return sockets.tunnels;
    },
    requests,
    close: () => sockets.close(server),
  };
}

/** A reply with an IPv4 bound address of 0.0.0.0:0. */
function reply(code: number): Buffer {
  return Buffer.from([5, code, 0, 1, 0, 0, 0, 0, 0, 0]);
}

function ipv6Text(bytes: Buffer): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i).toString(16));
  return groups.join(':');
}

type Reader = ((count: number) => Promise<Buffer>) & { rest(): Buffer[] };

/** Reads exact byte counts off a socket (rejecting when it closes first); `rest()` stops and returns what is left. */
function reader(socket: net.Socket): Reader {
  let buffered = Buffer.alloc(0);
  let wake: (() => void) | undefined;
  let closed = false;
  const onData = (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk]);
    wake?.();
  };
  socket.on('data', onData);
  socket.once('close', () => {
    closed = true;
    wake?.();
  });
  const read = async (count: number): Promise<Buffer> => {
    while (buffered.length < count) {
      if (closed) throw new Error('closed');
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
    }
    const bytes = buffered.subarray(0, count);
    buffered = buffered.subarray(count);
    return bytes;
  };
  return Object.assign(read, {
    rest: () => {
      socket.off('data', onData);
      socket.pause();
      return buffered.length > 0 ? [buffered] : [];
    },
  });
}
