import net from 'node:net';

/** What every proxy double on 127.0.0.1 reports. */
export interface TunnelDouble {
  /** `scheme://127.0.0.1:port`, without credentials. */
  readonly url: string;
  readonly port: number;
  /** Tunnels opened (the target connected and the client was told so). */
  readonly tunnels: number;
  /** Client connections to the proxy now open. */
  readonly openConnections: number;
  close(): Promise<void>;
}

/**
 * The sockets a proxy double holds (clients, and the connections it opened to targets) and the tunnels it
 * opened; `close` ends them all with the server.
 */
export class TunnelSockets {
  private readonly clients = new Set<net.Socket>();
  private readonly upstreams = new Set<net.Socket>();
  tunnels = 0;

  /** Tracks a client connection until it closes. */
  client(socket: net.Socket): void {
    track(this.clients, socket);
  }

  get openClients(): number {
    return this.clients.size;
  }

  /**
   * Connects to the target on 127.0.0.1 and, once connected, tells the client (`opened`, which may write
   * bytes the client already sent to the target) and pipes both
   * ways; `failed` answers the client if the target can't be reached. Either side closing closes the other.
   */
  splice(client: net.Socket, port: number, opened: (upstream: net.Socket) => void, failed: () => void): void {
    const upstream = net.connect(port, '127.0.0.1');
    track(this.upstreams, upstream);
    upstream.once('error', () => {
      if (!client.writableEnded) failed();
    });
    upstream.once('connect', () => {
      this.tunnels++;
      opened(upstream);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    client.once('close', () => upstream.destroy());
    upstream.once('close', () => client.destroy());
  }

  /** Destroys every socket and closes the server. */
  async close(server: net.Server): Promise<void> {
    for (const socket of [...this.clients, ...this.upstreams]) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

function track(set: Set<net.Socket>, socket: net.Socket): void {
  set.add(socket);
  socket.once('close', () => set.delete(socket));
}
