/**
 * `npm run bench`: what the proxy adds to latency, time to first byte and throughput.
 *
 * Starts a fake Gemini, the real local proxy (`lambda/local/server.ts`, as `npm start` runs it) and a bare
 * 30-line reverse proxy as a yardstick, each in its own process on 127.0.0.1. Sends the same requests
 * directly, through the bare proxy and through ours, interleaved round by round so that machine noise hits
 * all alike, and prints one JSON line: overheads over direct in ms (p50, p99, streaming time to first
 * byte) at concurrency 1 and 32, and throughput at 32 relative to direct.
 */
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import http from 'node:http';
import { startChild, startProxyProcess } from './children.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 12);
const PER_ROUND_C1 = 150;
const PER_ROUND_C32 = 1200;
const KEYS = ['bench-key-0', 'bench-key-1', 'bench-key-2', 'bench-key-3'];
const TOKEN = 'bench-client-token';
const MODEL = 'gemini-2.5-flash';
/** Gemini answers in hundreds of ms; throughput is also measured against an upstream this slow. */
const UPSTREAM_MS = Number(process.env.BENCH_UPSTREAM_MS ?? 20);
/** The model the fake answers UPSTREAM_MS late (the proxy forwards no test header that could ask it to). */
const SLOW_MODEL = 'gemini-2.5-pro';
const SLOW_PER_ROUND = 320;
type Mode = 'direct' | 'bare' | 'proxy';

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
  const fake = await startChild(
    'test/bench/fake-upstream-process.ts',
    { BENCH_KEYS: KEYS.join(','), BENCH_SLOW_MODEL: SLOW_MODEL, BENCH_UPSTREAM_MS: String(UPSTREAM_MS) },
    (l) => l.startsWith('{"url"'),
  );
  const { url, openAiBase } = JSON.parse(fake.line) as { url: string; openAiBase: string };
  const proxy = await startProxyProcess({ keys: KEYS, token: TOKEN, openAiBase, nativeBaseUrl: url });
  const bare = await startChild('test/bench/bare-proxy.ts', {}, (l) => l.startsWith('{"url"'), [
    openAiBase,
    KEYS[0]!,
  ]);
  const children: ChildProcess[] = [fake.child, proxy.child, bare.child];

  try {
    const portOf = (line: string) => Number(new URL((JSON.parse(line) as { url: string }).url).port);
    const targets: Record<Mode, Target> = {
      direct: {
        port: portOf(fake.line),
        path: '/v1beta/openai/chat/completions',
        headers: { authorization: `Bearer ${KEYS[0]}` },
      },
      bare: { port: portOf(bare.line), path: '/v1/chat/completions', headers: {} },
      proxy: {
        port: proxy.port,
        path: '/v1/chat/completions',
        headers: { authorization: `Bearer ${TOKEN}` },
      },
    };
    const plain = JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'hi' }] });
    const stream = JSON.stringify({
      model: MODEL,
      messages: [{ role: 'user', content: 'hi' }],
      stream: true,
    });
    const slow = JSON.stringify({ model: SLOW_MODEL, messages: [{ role: 'user', content: 'hi' }] });

    const results = new Map<string, Batch[]>();
    const run = async (
      name: string,
      agent: http.Agent,
      target: Target,
      body: string,
      c: number,
      n: number,
    ) => {
      const b = await batch(agent, target, body, c, n);
      results.set(name, [...(results.get(name) ?? []), b]);
    };
    const modes: Mode[] = ['direct', 'bare', 'proxy'];
    for (const concurrency of [1, 32]) {
      const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
      const n = concurrency === 1 ? PER_ROUND_C1 : PER_ROUND_C32;
      // Warm up every path (JIT, keep-alive sockets) before measuring.
      for (const mode of modes) await batch(agent, targets[mode], plain, concurrency, n);
      for (let r = 0; r < ROUNDS; r++) {
        // Rotate the order each round so that drift in machine load hits every mode alike.
        for (const mode of [...modes.slice(r % 3), ...modes.slice(0, r % 3)]) {
          const t = targets[mode];
          await run(`${mode}_plain_c${concurrency}`, agent, t, plain, concurrency, n);
          await run(`${mode}_stream_c${concurrency}`, agent, t, stream, concurrency, n);
          if (concurrency === 32) {
            await run(`${mode}_slow_c32`, agent, t, slow, concurrency, SLOW_PER_ROUND);
          }
        }
      }
      agent.destroy();
    }

    const all = (name: string, pick: (b: Batch) => number[]) => (results.get(name) ?? []).flatMap(pick);
    const rps = (name: string) => {
      const bs = results.get(name) ?? [];
      return bs.reduce((s, b) => s + b.totals.length, 0) / (bs.reduce((s, b) => s + b.elapsedMs, 0) / 1000);
    };
    const out: Record<string, number | string> = { bench: 'proxy-overhead', rounds: ROUNDS };
    for (const mode of ['proxy', 'bare'] as const) {
      for (const c of [1, 32]) {
        const d = all(`direct_plain_c${c}`, (b) => b.totals);
        const p = all(`${mode}_plain_c${c}`, (b) => b.totals);
        const dt = all(`direct_stream_c${c}`, (b) => b.ttfbs);
        const pt = all(`${mode}_stream_c${c}`, (b) => b.ttfbs);
        if (mode === 'proxy') out[`c${c}_direct_p50_ms`] = round(quantile(d, 0.5));
        out[`${mode}_c${c}_overhead_p50_ms`] = round(quantile(p, 0.5) - quantile(d, 0.5));
        out[`${mode}_c${c}_overhead_p99_ms`] = round(quantile(p, 0.99) - quantile(d, 0.99));
        out[`${mode}_c${c}_ttfb_overhead_p50_ms`] = round(quantile(pt, 0.5) - quantile(dt, 0.5));
      }
      out[`${mode}_c32_throughput_ratio_zero_latency_upstream`] = round(
        rps(`${mode}_plain_c32`) / rps('direct_plain_c32'),
      );
      out[`${mode}_c32_throughput_ratio_${UPSTREAM_MS}ms_upstream`] = round(
        rps(`${mode}_slow_c32`) / rps('direct_slow_c32'),
      );
    }
    process.stdout.write(`${JSON.stringify(out)}\n`);
  } finally {
    for (const child of children) {
      child.kill('SIGTERM');
      await once(child, 'exit');
    }
    proxy.close();
  }
}

await main();
