/**
 * `npm run bench`: what the proxy adds to latency, time to first byte and throughput.
 *
 * Starts a fake Gemini and the real local proxy (`lambda/local/server.ts`, as `npm start` runs it), each
 * in its own process on 127.0.0.1, then measures the same requests sent directly to the fake and through
 * the proxy, interleaved round by round so that machine noise hits both alike. Prints one JSON line.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 12);
const PER_ROUND_C1 = 150;
const PER_ROUND_C32 = 1200;
const KEYS = ['bench-key-0', 'bench-key-1', 'bench-key-2', 'bench-key-3'];
const TOKEN = 'bench-client-token';
const MODEL = 'gemini-2.5-flash';
const TSX = join(process.cwd(), 'node_modules', '.bin', 'tsx');

async function startChild(script: string, env: Record<string, string>, ready: (line: string) => boolean) {
  const child = spawn(TSX, [script], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout! });
  for await (const line of lines) {
    if (ready(line)) {
      // Keep draining stdout (the proxy logs a line per request) without holding it.
      child.stdout!.resume();
      return { child, line };
    }
  }
  throw new Error(`${script} exited before it was ready`);
}

interface Target {
  readonly port: number;
  readonly path: string;
  readonly headers: Record<string, string>;
}

function request(agent: http.Agent, target: Target, body: string): Promise<{ total: number; ttfb: number }> {
  return new Promise((resolve, reject) => {
    const start = process.hrtime.bigint();
    let ttfb = 0;
    const req = http.request(
      {
        host: '127.0.0.1',
        port: target.port,
        path: target.path,
        method: 'POST',
        agent,
        headers: {
          ...target.headers,
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
        },
      },
      (res) => {
        res.on('data', () => {
          if (ttfb === 0) ttfb = Number(process.hrtime.bigint() - start) / 1e6;
        });
        res.on('end', () => {
          if (res.statusCode !== 200) reject(new Error(`status ${res.statusCode}`));
          else resolve({ total: Number(process.hrtime.bigint() - start) / 1e6, ttfb });
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

interface Batch {
  readonly totals: number[];
  readonly ttfbs: number[];
  readonly elapsedMs: number;
}

async function batch(
  agent: http.Agent,
  target: Target,
  body: string,
  concurrency: number,
  n: number,
): Promise<Batch> {
  const totals: number[] = [];
  const ttfbs: number[] = [];
  let next = 0;
  const started = performance.now();
  const worker = async () => {
    while (next < n) {
      next++;
      const r = await request(agent, target, body);
      totals.push(r.total);
      ttfbs.push(r.ttfb);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { totals, ttfbs, elapsedMs: performance.now() - started };
}

const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? Number.NaN;
};
const round = (x: number) => Math.round(x * 1000) / 1000;

async function main(): Promise<void> {
  const fake = await startChild('test/bench/fake-upstream-process.ts', { BENCH_KEYS: KEYS.join(',') }, (l) =>
    l.startsWith('{"url"'),
  );
  const { url, openAiBase } = JSON.parse(fake.line) as { url: string; openAiBase: string };
  const dir = mkdtempSync(join(tmpdir(), 'gp-bench-'));
  const configPath = join(dir, 'config.yaml');
  writeFileSync(
    configPath,
    JSON.stringify({
      server: { host: '127.0.0.1', port: 0 },
      client_tokens: [TOKEN],
      groups: [{ name: 'bench', api_keys: KEYS, target_url: openAiBase }],
      upstream: { native_base_url: url },
    }),
  );
  const proxy = await startChild(
    'lambda/local/server.ts',
    { CONFIG_PATH: configPath, LOG_LEVEL: 'info' },
    (l) => l.includes('"message":"listening"'),
  );
  const proxyUrl = (JSON.parse(proxy.line) as { url: string }).url;
  const children: ChildProcess[] = [fake.child, proxy.child];

  try {
    const direct: Target = {
      port: Number(new URL(url).port),
      path: '/v1beta/openai/chat/completions',
      headers: { authorization: `Bearer ${KEYS[0]}` },
    };
    const proxied: Target = {
      port: Number(new URL(proxyUrl).port),
      path: '/v1/chat/completions',
      headers: { authorization: `Bearer ${TOKEN}` },
    };
    const plain = JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'hi' }] });
    const stream = JSON.stringify({
      model: MODEL,
      messages: [{ role: 'user', content: 'hi' }],
      stream: true,
    });

    const results: Record<string, Batch[]> = {};
    const add = (name: string, b: Batch) => {
      results[name] ??= [];
      results[name].push(b);
    };
    for (const concurrency of [1, 32]) {
      const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
      const n = concurrency === 1 ? PER_ROUND_C1 : PER_ROUND_C32;
      // Warm up both paths (JIT, keep-alive sockets) before measuring.
      await batch(agent, direct, plain, concurrency, n);
      await batch(agent, proxied, plain, concurrency, n);
      for (let r = 0; r < ROUNDS; r++) {
        const [first, second] = r % 2 === 0 ? ['direct', 'proxy'] : ['proxy', 'direct'];
        for (const which of [first, second]) {
          const target = which === 'direct' ? direct : proxied;
          add(`${which}_plain_c${concurrency}`, await batch(agent, target, plain, concurrency, n));
          add(`${which}_stream_c${concurrency}`, await batch(agent, target, stream, concurrency, n));
        }
      }
      agent.destroy();
    }

    const all = (name: string, pick: (b: Batch) => number[]) => (results[name] ?? []).flatMap(pick);
    const rps = (name: string) => {
      const bs = results[name] ?? [];
      return bs.reduce((s, b) => s + b.totals.length, 0) / (bs.reduce((s, b) => s + b.elapsedMs, 0) / 1000);
    };
    const out: Record<string, number | string> = { bench: 'proxy-overhead', rounds: ROUNDS };
    for (const c of [1, 32]) {
      const d = all(`direct_plain_c${c}`, (b) => b.totals);
      const p = all(`proxy_plain_c${c}`, (b) => b.totals);
      const dt = all(`direct_stream_c${c}`, (b) => b.ttfbs);
      const pt = all(`proxy_stream_c${c}`, (b) => b.ttfbs);
      out[`c${c}_direct_p50_ms`] = round(quantile(d, 0.5));
      out[`c${c}_proxy_p50_ms`] = round(quantile(p, 0.5));
      out[`c${c}_overhead_p50_ms`] = round(quantile(p, 0.5) - quantile(d, 0.5));
      out[`c${c}_overhead_p99_ms`] = round(quantile(p, 0.99) - quantile(d, 0.99));
      out[`c${c}_ttfb_direct_p50_ms`] = round(quantile(dt, 0.5));
      out[`c${c}_ttfb_overhead_p50_ms`] = round(quantile(pt, 0.5) - quantile(dt, 0.5));
      out[`c${c}_throughput_ratio`] = round(rps(`proxy_plain_c${c}`) / rps(`direct_plain_c${c}`));
    }
    process.stdout.write(`${JSON.stringify(out)}\n`);
  } finally {
    for (const child of children) {
      child.kill('SIGTERM');
      await once(child, 'exit');
    }
  }
}

await main();
