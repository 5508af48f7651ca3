/**
 * `npx tsx test/bench/token-estimate.ts`: what estimating a body's input tokens costs, in ms per MiB
 * (the fastest of several runs), beside `scanBodyFields` (which the proxy already runs on every body):
 *
 * - `text`: a 5 MiB chat of long messages (some non-ASCII, newlines escaped);
 * - `images`: a 5 MiB native body of 60 inline JPEGs, each with its size behind a 20 kB EXIF segment;
 * - `numbers` and `objects`: 10 MiB of the densest structure (`[0,0,…]`, `[{},{},…]`), the worst case.
 */
import { scanBodyFields } from '../../lambda/core/json-fields.js';
import { type EstimateTarget, estimateInputTokens } from '../../lambda/core/token-estimate.js';

const MiB = 1024 * 1024;
const RUNS = 15;

function textBody(): Buffer {
  const sentence = 'The quick brown fox jumps over the lazy dog; naïve café prose.\n';
  const messages: Array<{ role: string; content: string }> = [];
  for (let size = 0; size < 5 * MiB; ) {
    const content = sentence.repeat(40 + (messages.length % 60));
    messages.push({ role: messages.length % 2 ? 'assistant' : 'user', content });
    size += content.length + 40;
  }
  return Buffer.from(JSON.stringify({ model: 'gemini-2.5-flash', messages }));
}

function jpeg(bytes: number): string {
  const b = Buffer.alloc(bytes, 0x41);
  b.set([0xff, 0xd8, 0xff, 0xe1]);
  b.writeUInt16BE(20_000, 4);
  b.set([0xff, 0xc0, 0, 17, 8], 4 + 20_000);
  b.writeUInt16BE(1200, 4 + 20_005);
  b.writeUInt16BE(1600, 4 + 20_007);
  return b.toString('base64');
}

function imageBody(): Buffer {
  const parts: unknown[] = [];
  for (let k = 0; k < 60; k++)
    parts.push({ inlineData: { mimeType: 'image/jpeg', data: jpeg(64_000) } }, { text: 'and this one?' });
  return Buffer.from(JSON.stringify({ contents: [{ role: 'user', parts }] }));
}

function fastest(run: () => unknown): number {
  let best = Number.POSITIVE_INFINITY;
  for (let k = 0; k < RUNS; k++) {
    const start = performance.now();
    run();
    best = Math.min(best, performance.now() - start);
  }
  return best;
}

const chat: EstimateTarget = { kind: 'openai', rest: 'chat/completions' };
const native: EstimateTarget = { kind: 'native', method: 'generateContent' };
const cases: Array<[string, EstimateTarget, Buffer]> = [
  ['text', chat, textBody()],
  ['images', native, imageBody()],
  [
    'numbers',
    { kind: 'openai', rest: 'completions' },
    Buffer.from(`{"prompt":[${'0,'.repeat(5 * MiB - 8)}0]}`),
  ],
  ['objects', chat, Buffer.from(`{"messages":[${'{},'.repeat((10 * MiB) / 3 - 8)}{}]}`)],
];
for (const [name, target, body] of cases) {
  const mib = body.length / MiB;
  const tokens = estimateInputTokens(target, body);
  const estimate = fastest(() => estimateInputTokens(target, body));
  const scan = fastest(() => scanBodyFields(body));
  console.log(
    JSON.stringify({
      body: name,
      MiB: Number(mib.toFixed(2)),
      tokens,
      msPerMiB: Number((estimate / mib).toFixed(2)),
      scanBodyFieldsMsPerMiB: Number((scan / mib).toFixed(2)),
    }),
  );
}
