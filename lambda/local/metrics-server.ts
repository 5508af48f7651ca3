import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { PrometheusMetrics } from '../adapters/prometheus-metrics.js';
import type { Logger } from '../core/logger.js';

export interface MetricsListener {
  /** `http://host:port`; Prometheus scrapes `<url>/metrics`. */
  readonly url: string;
  close(): Promise<void>;
}

const plain = (res: http.ServerResponse, status: number, text: string) => {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' }).end(`${text}\n`);
};

/**
 * The `/metrics` listener: a port of its own, without a client token, for Prometheus. It answers
 * `GET /metrics` and nothing else; bind it to loopback or an interface only the scraper reaches.
 */
export async function startMetricsListener(
  metrics: PrometheusMetrics,
  address: { readonly host: string; readonly port: number },
  logger: Logger,
): Promise<MetricsListener> {
  const server = http.createServer({ requestTimeout: 10_000, headersTimeout: 5_000 }, (req, res) => {
    const path = (req.url ?? '/').split('?', 1)[0];
    if (path !== '/metrics') return plain(res, 404, 'Not found: scrape /metrics.');
    if (req.method !== 'GET' && req.method !== 'HEAD') return plain(res, 405, 'Method not allowed.');
    metrics.scrape().then(
      ({ contentType, body }) => {
        res.writeHead(200, { 'content-type': contentType });
        res.end(req.method === 'HEAD' ? undefined : body);
      },
      (err: unknown) => {
        logger.warn('metrics scrape failed', { error: err instanceof Error ? err.name : 'unknown' });
        plain(res, 500, 'Metrics unavailable.');
      },
    );
  });
  server.keepAliveTimeout = 65_000;
  server.listen(address.port, address.host);
  await once(server, 'listening');
  const { address: bound, port } = server.address() as AddressInfo;
  const host = bound.includes(':') ? `[${bound}]` : bound;
  return {
    url: `http://${host}:${port}`,
    close: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}
