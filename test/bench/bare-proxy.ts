/**
 * The benchmark's yardstick: a bare node:http reverse proxy (no auth, no rotation, no policy), the
 * least any Node proxy can cost on this machine. Usage: tsx bare-proxy.ts <upstream openAiBase> <key>.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

const [base, key] = process.argv.slice(2) as [string, string];
const upstream = new URL(base);
const agent = new http.Agent({ keepAlive: true });
const server = http.createServer((req, res) => {
  const headers = { ...req.headers, authorization: `Bearer ${key}` };
  delete headers.host;
  const up = http.request(
    {
      host: upstream.hostname,
      port: upstream.port,
      path: `${upstream.pathname}${(req.url ?? '/').replace(/^\/v1\//, '')}`,
      method: req.method,
      headers,
      agent,
    },
    (upRes) => {
      res.writeHead(upRes.statusCode ?? 502, upRes.headers);
      upRes.pipe(res);
    },
  );
  up.on('error', () => res.writeHead(502).end());
  req.pipe(up);
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(
    `${JSON.stringify({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` })}\n`,
  );
});
process.once('SIGTERM', () => process.exit(0));
