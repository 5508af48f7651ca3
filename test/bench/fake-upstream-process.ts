/** Runs the fake Gemini in its own process for the benchmark; prints its URL as one JSON line. */
import { startFakeGemini } from '../support/fake-gemini.js';

const keys = (process.env.BENCH_KEYS ?? '').split(',').filter((k) => k !== '');
// A slow upstream is one model answered late: a delay asked for in a header would not pass the proxy.
const slowModel = process.env.BENCH_SLOW_MODEL;
const modelDelayMs =
  slowModel === undefined ? {} : { [slowModel]: Number(process.env.BENCH_UPSTREAM_MS ?? 0) };
const fake = await startFakeGemini({ keys, streamChunks: 5, modelDelayMs });
// The benchmark sends many requests: keep the recorded calls from growing without bound.
setInterval(() => fake.calls.splice(0), 1000).unref();
process.stdout.write(`${JSON.stringify({ url: fake.url, openAiBase: fake.openAiBase })}\n`);
process.once('SIGTERM', () => void fake.close().then(() => process.exit(0)));
