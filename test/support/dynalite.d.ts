/** The part of dynalite's API the tests use (the package ships no types). */
declare module 'dynalite' {
  import type { IncomingMessage, ServerResponse } from 'node:http';
  import type { AddressInfo } from 'node:net';

  interface DynaliteServer {
    listen(port: number, host: string, callback: () => void): void;
    close(callback: () => void): void;
    closeAllConnections(): void;
    address(): AddressInfo;
    on(event: 'request', listener: (req: IncomingMessage, res: ServerResponse) => void): void;
  }

  export default function dynalite(options?: {
    createTableMs?: number;
    deleteTableMs?: number;
    updateTableMs?: number;
  }): DynaliteServer;
}
