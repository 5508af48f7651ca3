import http from 'node:http';
import https from 'node:https';
import {
  type UpstreamClient,
  UpstreamError,
  type UpstreamRequest,
  type UpstreamResponse,
} from '../core/http.js';
import { ProxyTunnelError } from './proxy-handshakes.js';
import { type TlsOverrides, type TunnelRequestOptions, UpstreamAgentCache } from './proxy-tunnel.js';

/**
 * The one HTTP client to Gemini: node:http(s) with keep-alive agents, a connect timeout, a
 * first-byte (response headers) timeout, and abort on the request's signal at any point, body included.
 */
export class NodeUpstreamClient implements UpstreamClient {
  readonly #agents: UpstreamAgentCache;

  /** @param tls TLS settings for connections to Gemini and to https proxies (a test's `ca`). @default system CAs */
  constructor(tls?: TlsOverrides) {
    this.#agents = new UpstreamAgentCache(tls === undefined ? {} : { targetTls: tls, proxyTls: tls });
  }

  send(request: UpstreamRequest): Promise<UpstreamResponse> {
    const { url, signal } = request;
    const isHttps = url.protocol === 'https:';
    return new Promise<UpstreamResponse>((resolve, reject) => {
      if (signal.aborted) {
        reject(new UpstreamError('aborted', 'request aborted before sending'));
        return;
      }
      let settled = false;
      const fail = (err: UpstreamError) => {
        if (settled) return;
        settled = true;
        clearTimeout(firstByteTimer);
        clearTimeout(connectTimer);
        req.destroy(err);
        reject(err);
      };
      const agents = this.#agents.agentsFor(request.proxy);
      const options: http.RequestOptions & TunnelRequestOptions = {
        protocol: url.protocol,
        hostname: url.hostname,
        port: url.port,
        path: `${url.pathname}${url.search}`,
        method: request.method,
        headers: request.headers,
        agent: isHttps ? agents.https : agents.http,
        // A tunnel agent bounds its whole handshake (proxy, CONNECT or SOCKS5, the target's TLS) by it.
        connectTimeoutMs: request.connectTimeoutMs,
      };
      const req = (isHttps ? https : http).request(options);
      let connectTimer: NodeJS.Timeout | undefined;
      const firstByteTimer = setTimeout(
        () => fail(new UpstreamError('first_byte_timeout', 'no response headers in time')),
        request.firstByteTimeoutMs,
      );
      req.on('socket', (socket) => {
        socket.setNoDelay(true);
        if (socket.connecting) {
          connectTimer = setTimeout(
            () => fail(new UpstreamError('connect_timeout', 'connection not established in time')),
            request.connectTimeoutMs,
          );
          socket.once(isHttps ? 'secureConnect' : 'connect', () => clearTimeout(connectTimer));
        }
      });
      const onAbort = () => {
        if (!settled) fail(new UpstreamError('aborted', 'request aborted'));
        else req.destroy();
      };
      signal.addEventListener('abort', onAbort, { once: true });
      req.on('response', (res) => {
        settled = true;
        clearTimeout(firstByteTimer);
        clearTimeout(connectTimer);
        res.once('close', () => signal.removeEventListener('abort', onAbort));
        resolve({ status: res.statusCode ?? 502, headers: res.headers, body: res });
      });
      req.on('error', (err) => {
        signal.removeEventListener('abort', onAbort);
        // The message of a network error names host and port, never the path or a header.
        // A tunnel's message names the proxy as scheme://host:port only, never its credentials.
        const kind = err instanceof ProxyTunnelError ? 'proxy' : 'network';
        fail(new UpstreamError(kind, err.message, { cause: err }));
      });
      req.end(request.body);
    });
  }

  /** Closes idle keep-alive sockets (on shutdown). */
  close(): void {
    this.#agents.destroy();
  }
}
