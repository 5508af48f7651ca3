/**
 * `npm run bench:hostile`: what big hostile request bodies cost the proxy process.
 *
 * Starts a fake Gemini and the real local proxy (`lambda/local/server.ts`), each in its own process on
 * 127.0.0.1, a fresh proxy for each scenario so its peak RSS (`VmHWM`) belongs to that scenario alone.
 * While the bodies are sent, `/health` is asked every 5 ms: its slowest answer is how long the proxy's
 * event loop stalled. Prints one JSON line per scenario:
 *
 * - `deep_1`: one 10 MiB body nested 5 million levels deep (`[[[[…]]]]`);
 * - `deep_4`: four of them at once;
 * - `wide_4`: four valid 10 MiB bodies (a long messages array) that the proxy forwards to Gemini;
 * - `scan`: in this process, what reading `model` and `stream` costs for each body (the part of the
 *   proxy's work that grows with the body, besides receiving and forwarding it).
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { scanBodyFields } from '../../lambda/core/json-fields.js';
import { startChild, startProxyProcess } from './children.js';

const KEYS = ['bench-key-0', 'bench-key-1'];
const TOKEN = 'bench-client-token';
const MODEL = 'gemini-2.5-flash';
/** Just under the default `server.max_body_bytes` (10 MiB). */
const SIZE = 10 * 1024 * 1024 - 64;

/** Resident set now and at its peak, in MiB, from /proc (Linux). */
function memory(pid: number): { rssMiB: number; peakMiB: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? NaN);
  return { rssMiB: Math.round(kib('VmRSS') / 1024), peakMiB: Math.round(kib('VmHWM') / 1024) };
}

function send(port: number, path: string, body: Buffer | undefined): Promise<{ status: number; ms: number }> {
  return new Promise((resolve, reject) => {
    const start = performance.now();
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        path,
        method: body === undefined ? 'GET' : 'POST',
        agent: false,
        headers:
          body === undefined
            ? {}
            : {
                authorization: `Bearer ${TOKEN}`,
                'content-type': 'application/json',
                'content-length': body.byteLength,
              },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, ms: performance.now() - start }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

function deepBody(): Buffer {
  const head = `{"model":"${MODEL}","messages":[{"role":"user","content":"hi"}],"x":`;
  const depth = Math.floor((SIZE - head.length - 1) / 2);
  return Buffer.from(`${head}${'['.repeat(depth)}${']'.repeat(depth)}}`);
}

function wideBody(): Buffer {
  const message = JSON.stringify({ role: 'user', content: 'a'.repeat(1000) });
  const head = `{"model":"${MODEL}","messages":[`;
  const count = Math.floor((SIZE - head.length - 2) / (message.length + 1));
  return Buffer.from(`${head}${Array.from({ length: count }, () => message).join(',')}]}`);
}

async function scenario(name: string, bodies: Buffer[], upstream: string, openAiBase: string) {
  const proxy = await startProxyProcess({ keys: KEYS, token: TOKEN, openAiBase, nativeBaseUrl: upstream });
  try {
    const { port } = proxy;
    // Warm up: one small request and a few health checks.
    await send(port, '/v1/chat/completions', Buffer.from(JSON.stringify({ model: MODEL, messages: [] })));
    for (let i = 0; i < 5; i++) await send(port, '/health', undefined);
    const before = memory(proxy.child.pid!);
    let done = false;
    let healthMaxMs = 0;
    const probe = (async () => {
      while (!done) {
        const { ms } = await send(port, '/health', undefined);
        healthMaxMs = Math.max(healthMaxMs, ms);
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    const started = performance.now();
    const answers = await Promise.all(bodies.map((b) => send(port, '/v1/chat/completions', b)));
    const elapsedMs = performance.now() - started;
    await new Promise((r) => setTimeout(r, 50));
    done = true;
    await probe;
    const after = memory(proxy.child.pid!);
    const round = (x: number) => Math.round(x * 10) / 10;
    process.stdout.write(
      `${JSON.stringify({
        scenario: name,
        bodies: bodies.length,
        body_mib: round(bodies[0]!.byteLength / 1024 / 1024),
        statuses: answers.map((a) => a.status),
        all_answered_ms: round(elapsedMs),
        health_max_latency_ms: round(healthMaxMs),
        rss_before_mib: before.rssMiB,
        rss_peak_mib: after.peakMiB,
        rss_peak_growth_mib: after.peakMiB - before.rssMiB,
      })}\n`,
    );
  } finally {
    proxy.close();
  }
}

async function main(): Promise<void> {
  const fake = await startChild('test/bench/fake-upstream-process.ts', { BENCH_KEYS: KEYS.join(',') }, (l) =>
    l.startsWith('{"url"'),
  );
  try {
    const { url, openAiBase } = JSON.parse(fake.line) as { url: string; openAiBase: string };
    const deep = deepBody();
    const wide = wideBody();
    const scanMs = (body: Buffer) => {
      const times = Array.from({ length: 5 }, () => {
        const started = performance.now();
        scanBodyFields(body);
        return performance.now() - started;
      });
      return Math.round(Math.min(...times) * 100) / 100;
    };
    process.stdout.write(
      `${JSON.stringify({ scenario: 'scan', deep_body_ms: scanMs(deep), wide_body_ms: scanMs(wide) })}\n`,
    );
    await scenario('deep_1', [deep], url, openAiBase);
    await scenario('deep_4', [deep, deep, deep, deep], url, openAiBase);
    await scenario('wide_4', [wide, wide, wide, wide], url, openAiBase);
  } finally {
    fake.child.kill('SIGTERM');
  }
}

await main();
