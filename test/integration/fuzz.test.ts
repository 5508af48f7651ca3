import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Harness, KEYS, leaks, MODEL, postChat, startHarness, TOKEN } from '../support/harness.js';
import { type Rng, random } from '../support/random.js';

/** One request of the campaign: raw bytes for the socket, and the path it aims at. */
interface Case {
  readonly kind: string;
  readonly path: string;
  readonly bytes: Buffer;
}

const AUTH = `Bearer ${TOKEN}`;
const WEIRD = [
  '',
  ' ',
  '\u0000',
  '\u202e',
  'é',
  '😀',
  '%',
  '%00',
  '%2e%2e',
  '..',
  '//',
  '\\',
  '"',
  "'",
  '<',
  '{',
  '\n',
];
const MODELS = [
  MODEL,
  `models/${MODEL}`,
  'Gemini-2.5-Flash',
  `${MODEL}@001`,
  'constructor',
  '__proto__',
  'toString',
  '',
  'x'.repeat(300),
  '../../etc',
  'gemini-2.5-pro:generateContent',
];
const PATHS = [
  '/v1/chat/completions',
  '/v1/embeddings',
  '/v1/models',
  '/v1/files',
  '/v1/batches',
  '/v1beta/models',
  `/v1beta/models/${MODEL}:generateContent`,
  `/v1beta/models/${MODEL}:streamGenerateContent`,
  `/v1beta/models/${MODEL}%3AgenerateContent`,
  '/v1beta/files',
  '/v1beta/cachedContents',
  '/v1beta/tunedModels',
  '/v1beta/batches/x:cancel',
  '/health/detailed',
  '/nope',
  '/',
];

function jsonValue(rng: Rng, depth: number): unknown {
  const roll = rng.int(depth > 3 ? 4 : 7);
  switch (roll) {
    case 0:
      return rng.int(1_000_000) - 500_000;
    case 1:
      return rng.pick(WEIRD) + rng.pick(WEIRD);
    case 2:
      return rng.next() < 0.5;
    case 3:
      return null;
    case 4:
      return Array.from({ length: rng.int(4) }, () => jsonValue(rng, depth + 1));
    default:
      return Object.fromEntries(
        Array.from({ length: rng.int(4) }, () => [
          rng.pick(['model', 'stream', 'messages', 'x', 'contents']),
          jsonValue(rng, depth + 1),
        ]),
      );
  }
}

function body(rng: Rng): string {
  switch (rng.int(9)) {
    case 0: // a plausible chat body with a hostile model
      return JSON.stringify({
        model: rng.pick(MODELS),
        messages: [{ role: 'user', content: 'hi' }],
        stream: rng.pick([true, false, 'yes', 1, null]),
      });
    case 1: // truncated JSON
      return JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'hi' }] }).slice(
        0,
        rng.int(40),
      );
    case 2: // deep nesting
      return `${'['.repeat(200 + rng.int(5000))}${']'.repeat(rng.int(2) * 5000)}`;
    case 3: // duplicated model keys
      return `{"model":"${MODEL}","model":"${rng.pick(MODELS)}","messages":[]}`;
    case 4: // random JSON
      return JSON.stringify(jsonValue(rng, 0));
    case 5: // not JSON at all
      return rng.pick(['', 'model=gemini', '<xml/>', '\u0000\u0001\u0002', 'null', '[]', '"str"', '1e999']);
    case 6: // a long string value
      return JSON.stringify({
        model: MODEL,
        messages: [{ role: 'user', content: 'a'.repeat(rng.int(50_000)) }],
      });
    case 7: // over the body limit (64 KiB in this harness)
      return JSON.stringify({ model: MODEL, pad: 'p'.repeat(70_000) });
    default:
      return JSON.stringify({ model: rng.pick(MODELS), contents: [{ parts: [{ text: 'hi' }] }] });
  }
}

function headers(rng: Rng, length: number): string[] {
  const out = [`Host: 127.0.0.1`, `Content-Length: ${length}`];
  const auth = rng.int(6);
  if (auth === 0) out.push(`Authorization: ${AUTH}`, `x-goog-api-key: ${TOKEN}`);
  else if (auth === 1) out.push('Authorization: Bearer wrong-token');
  else if (auth === 2) out.push(`Authorization: bearer   ${TOKEN}   `);
  else if (auth !== 3) out.push(`Authorization: ${AUTH}`);
  out.push(
    `Content-Type: ${rng.pick(['application/json', 'text/plain', 'application/x-www-form-urlencoded', 'application/json; charset=utf-16', 'multipart/form-data; boundary=x'])}`,
  );
  const extra = [
    'x-goog-user-project: someone-elses-project',
    'x-http-method-override: DELETE',
    'x-goog-fieldmask: *',
    'Origin: http://evil.example',
    'Referer: http://evil.example/',
    'api-key: stolen',
    'Accept-Encoding: gzip, br',
    `X-Long: ${'h'.repeat(rng.int(8000))}`,
    'Connection: keep-alive, x-goog-user-project',
  ];
  for (let i = rng.int(4); i > 0; i--) out.push(rng.pick(extra));
  return out;
}

/** Well-framed requests with hostile content: bodies, paths, queries, headers, sizes. */
function framedCase(rng: Rng): Case {
  let path = rng.pick(PATHS);
  if (rng.next() < 0.2) path += encodeURI(rng.pick(WEIRD));
  if (rng.next() < 0.05) path = `/v1/${'a/'.repeat(2000)}chat/completions`;
  const query = rng.pick([
    '',
    '?alt=sse',
    `?key=${TOKEN}`,
    '?userProject=p&quotaUser=u',
    '?%6Bey=x',
    '?alt=sse&$fields=x',
  ]);
  const method = rng.pick(['POST', 'POST', 'POST', 'GET', 'DELETE', 'PUT', 'HEAD', 'OPTIONS', 'PATCH']);
  const text = method === 'GET' || method === 'HEAD' ? '' : body(rng);
  const payload = Buffer.from(text);
  const head = [
    `${method} ${path}${query} HTTP/1.1`,
    ...headers(rng, payload.byteLength),
    'Connection: close',
    '',
    '',
  ];
  return { kind: 'framed', path, bytes: Buffer.concat([Buffer.from(head.join('\r\n')), payload]) };
}

/** Requests Node's parser refuses: bad request lines, framing, oversized headers, Expect, no Host. */
function malformedCase(rng: Rng): Case {
  const cases = [
    'GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello',
    'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nbad\r\n0\r\n\r\n',
    `GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(20_000)}\r\n\r\n`,
    'BREW /pot HTTP/1.1\r\nHost: x\r\n\r\n',
    'GET /health HTTP/9.9\r\nHost: x\r\n\r\n',
    'GET /health\r\n\r\n',
    'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nExpect: teapot\r\nContent-Length: 2\r\n\r\n{}',
    'GET /health HTTP/1.1\r\n\r\n',
    'GET /he alth HTTP/1.1\r\nHost: x\r\n\r\n',
    '\u0000\u0001\u0002\r\n\r\n',
    'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n',
    'GET /health HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n',
  ];
  return { kind: 'malformed', path: '', bytes: Buffer.from(rng.pick(cases)) };
}

/** Sends one case and returns the first response: status, headers and body, or undefined if none came. */
function exchange(
  port: number,
  c: Case,
): Promise<{ status: number; head: string; body: string } | undefined> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    // Written, not ended: each request says `Connection: close`, and a half-closed client is one Node
    // may stop answering.
    const socket = net.connect(port, '127.0.0.1', () => {
      socket.write(c.bytes);
    });
    const done = () => {
      clearTimeout(timer);
      const raw = Buffer.concat(chunks).toString('latin1');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(raw);
      if (m === null) return resolve(undefined);
      const split = raw.indexOf('\r\n\r\n');
      const head = raw.slice(0, split);
      let rest = raw.slice(split + 4);
      if (/transfer-encoding: chunked/i.test(head)) {
        let out = '';
        for (;;) {
          const line = rest.indexOf('\r\n');
          const size = Number.parseInt(rest.slice(0, line), 16);
          if (!(size > 0)) break;
          out += rest.slice(line + 2, line + 2 + size);
          rest = rest.slice(line + 2 + size + 2);
        }
        rest = out;
      }
      resolve({ status: Number(m[1]), head, body: Buffer.from(rest, 'latin1').toString('utf8') });
    };
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.on('error', done);
    socket.on('close', done);
    const timer = setTimeout(() => socket.destroy(), 5000);
  });
}

/**
 * The hostile-input campaign in the suite: over a thousand generated malformed and hostile requests at the
 * real local server (bodies, paths, headers, framing, sizes), each checked as it is answered.
 */
describe('Fuzz: hostile input against the real local server', () => {
  let h: Harness;
  let port: number;

  beforeAll(async () => {
    h = await startHarness({ config: { server: { max_body_bytes: 64 * 1024 } } });
    port = Number(new URL(h.url).port);
  });
  afterAll(async () => {
    await h.close();
  });

  it('answers every one of 1,200 hostile requests without a 5xx, in OpenAI error shape, leaking nothing', async () => {
    // Prepare
    const rng = random(20261203);
    const cases = Array.from({ length: 1200 }, () =>
      rng.next() < 0.85 ? framedCase(rng) : malformedCase(rng),
    );
    const before = process.memoryUsage().rss;
    const problems: string[] = [];

    // Act: 16 at a time
    let next = 0;
    let answered = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < cases.length) {
          const c = cases[next++]!;
          const res = await exchange(port, c);
          if (res === undefined) continue;
          answered++;
          const where = `${c.kind} ${c.bytes.subarray(0, 80).toString('latin1')}`;
          if (res.status >= 500) problems.push(`${res.status} for ${where}`);
          if (res.status >= 400 && !/^HEAD /.test(c.bytes.toString('latin1', 0, 5))) {
            let error: { message?: unknown; type?: unknown; status?: unknown } | undefined;
            try {
              error = (JSON.parse(res.body) as { error?: typeof error }).error;
            } catch {
              error = undefined;
            }
            const native = c.path.startsWith('/v1beta/');
            const shaped =
              typeof error?.message === 'string' &&
              (typeof error.type === 'string' || (native && typeof error.status === 'string'));
            if (!shaped)
              problems.push(`${res.status} not an error JSON for ${where}: ${res.body.slice(0, 120)}`);
          }
        }
      }),
    );

    // Assess: answered, no 5xx, shaped errors, still serving, memory flat, nothing leaked
    expect(problems.slice(0, 20)).toEqual([]);
    expect(answered).toBeGreaterThanOrEqual(1000);
    expect((await postChat(h)).status).toBe(200);
    expect((await fetch(`${h.url}/health`)).status).toBe(200);
    expect(process.memoryUsage().rss - before).toBeLessThan(150 * 1024 * 1024);
    expect(leaks(h, [...KEYS, TOKEN])).toEqual([]);
  }, 120_000);
});
