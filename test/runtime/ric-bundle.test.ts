import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { GeminiProxyStack } from '../../lib/gemini-proxy-stack.js';
import { type DynamoEngine, startDynamoEngine } from '../support/dynamo-engine.js';
import { type FakeGemini, startFakeGemini } from '../support/fake-gemini.js';
import { functionUrlEvent } from '../support/lambda-stub.js';
import {
  type InvocationOutcome,
  type RuntimeApi,
  type RuntimeProcess,
  ricEntry,
  startRuntimeApi,
  startRuntimeProcess,
} from '../support/runtime-api.js';
import { type SecretsDouble, startSecretsDouble } from '../support/secrets-double.js';

/**
 * The proxy asset from cdk.out run under AWS's real Node.js runtime interface client (aws-lambda-ric 4,
 * the client Lambda's managed Node.js runtimes are built on) in its own process, against a Runtime API
 * double, dynalite, a fake Gemini and a Secrets Manager double. Unlike the stubbed `awslambda` of
 * test/infra/bundle.test.ts, this sees what the runtime does with the response stream, including a
 * process that dies.
 *
 * The runtime client has a native addon built at install time; set RIC_DIR to an install of it
 * (a folder whose node_modules holds aws-lambda-ric, or the package folder), as .ci/run does. RIC_NODE
 * picks the Node.js binary for the runtime process (the one running the tests by default).
 */
const RIC_DIR = process.env.RIC_DIR;
const KEYS = ['fake-key-ric-0001', 'fake-key-ric-0002'];
const TOKEN = 'ric-client-token-secret';
const KEYS_SECRET = 'arn:aws:secretsmanager:us-east-1:000000000000:secret:ric-keys';
const TOKENS_SECRET = 'arn:aws:secretsmanager:us-east-1:000000000000:secret:ric-tokens';
const FLASH = 'gemini-2.5-flash';
const PRO = 'gemini-2.5-pro';
const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

const title = RIC_DIR
  ? 'Runtime: the proxy asset under the real Lambda runtime interface client'
  : 'Runtime: the proxy asset under the real Lambda runtime interface client (skipped: RIC_DIR is not set; see .ci/run for building aws-lambda-ric)';

describe.skipIf(!RIC_DIR)(title, () => {
  let engine: DynamoEngine;
  let fake: FakeGemini;
  let secrets: SecretsDouble;
  let api: RuntimeApi;
  let runtime: RuntimeProcess | undefined;
  let outdir: string;
  let taskRoot: string;
  let functionEnv: Record<string, string>;
  /** Each runtime process that died, with what it printed: a crash is reported by its own test. */
  const deaths: Array<{ pid: number; code: number | null; stderr: string }> = [];

  const start = () => {
    const entry = ricEntry(RIC_DIR);
    if (!entry)
      throw new Error(`RIC_DIR=${RIC_DIR} holds no built aws-lambda-ric (index.mjs + rapid-client.node)`);
    const proc = startRuntimeProcess({
      entry,
      api,
      taskRoot,
      handler: 'index.handler',
      env: functionEnv,
      ...(process.env.RIC_NODE ? { node: process.env.RIC_NODE } : {}),
    });
    void proc.exited.then(() => deaths.push({ pid: proc.pid, code: proc.exitCode, stderr: proc.stderr }));
    return proc;
  };

  beforeAll(async () => {
    outdir = mkdtempSync(join(tmpdir(), 'gp-ric-'));
    const app = new App({ outdir });
    const stack = new GeminiProxyStack(app, 'RicBundle');
    app.synth();
    const [fn] = Object.entries(Template.fromStack(stack).findResources('AWS::Lambda::Function')).filter(
      ([id]) => id.startsWith('ProxyFunction'),
    );
    const props = fn![1].Properties;
    taskRoot = join(outdir, `asset.${String(props.Code.S3Key).replace(/\.zip$/, '')}`);
    // The function's own environment where it is literal (NODE_OPTIONS, the settings, ...).
    const deployed = Object.fromEntries(
      Object.entries(props.Environment.Variables as Record<string, unknown>).filter(
        (entry): entry is [string, string] => typeof entry[1] === 'string',
      ),
    );
    const settings = JSON.parse(deployed.PROXY_SETTINGS ?? '{}') as Record<string, Record<string, unknown>>;

    engine = await startDynamoEngine();
    fake = await startFakeGemini({ keys: KEYS });
    secrets = await startSecretsDouble({
      [KEYS_SECRET]: JSON.stringify({
        groups: [{ name: 'primary', api_keys: KEYS, target_url: fake.openAiBase }],
      }),
      [TOKENS_SECRET]: JSON.stringify({ tokens: [{ sha256: sha256(TOKEN) }] }),
    });
    api = await startRuntimeApi();
    functionEnv = {
      ...deployed,
      TABLE_NAME: engine.table,
      KEYS_SECRET_ID: KEYS_SECRET,
      TOKENS_SECRET_ID: TOKENS_SECRET,
      LOG_LEVEL: 'warn',
      METRICS_NAMESPACE: 'RicTest',
      PROXY_SETTINGS: JSON.stringify({
        ...settings,
        // No background model-list read: it would be one more call in the fake's count.
        upstream: { ...settings.upstream, native_base_url: fake.url, model_list_ms: 0 },
        state: { ...settings.state, endpoint: engine.endpoint, cache_ms: 0 },
        policy: { ...settings.policy, transient_retry_delay_ms: 5 },
      }),
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: 'local',
      AWS_SECRET_ACCESS_KEY: 'local',
      AWS_ENDPOINT_URL_SECRETS_MANAGER: secrets.endpoint,
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    };
  }, 120_000);

  afterAll(async () => {
    await runtime?.stop();
    await api?.close();
    await secrets?.close();
    await fake?.close();
    await engine?.close();
    if (outdir) rmSync(outdir, { recursive: true, force: true });
  });

  /** A case starts with a live runtime process: a new one only if the last case killed it. */
  let pidAtStart = 0;
  beforeEach(async () => {
    if (runtime?.alive) {
      // Settled either way: back on /next, or dead of what the last case did.
      await Promise.race([api.idle(), runtime.exited, new Promise((r) => setTimeout(r, 5_000))]);
    }
    if (!runtime?.alive) runtime = start();
    pidAtStart = runtime.pid;
    fake.reset();
    fake.options.streamChunkDelayMs = 0;
  });

  const invoke = (event: unknown, timeoutMs?: number) =>
    api.invoke(event, timeoutMs === undefined ? {} : { timeoutMs });

  /** The process that served the case is alive and serves the next invocation (same pid, no restart). */
  async function expectRuntimeSurvived(): Promise<void> {
    const proc = runtime!;
    const died = () =>
      `runtime process ${proc.pid} exited (code ${proc.exitCode}, signal ${proc.signal}); stderr:\n${proc.stderr.slice(-2000)}`;
    expect(proc.alive, died()).toBe(true);
    const next = await invoke(functionUrlEvent('GET', '/health'));
    expect(next.kind, died()).toBe('response');
    expect(next.complete).toBe(true);
    expect(next.prelude?.statusCode).toEqual(expect.any(Number));
    // ...and asks for the one after it.
    const idle = await Promise.race([api.idle().then(() => true), proc.exited.then(() => false)]);
    expect(idle, died()).toBe(true);
    expect(proc.pid).toBe(pidAtStart);
    expect(proc.alive, died()).toBe(true);
  }

  /**
   * How a response ended: `clean end` (terminating chunk, no error trailer), `error trailers` (the
   * runtime's way to report a failed stream), `cut off` (its request to the Runtime API aborted), or
   * `process exited`; the last two with the fate of the runtime process, once it has settled.
   */
  async function howItEnded(o: InvocationOutcome): Promise<string> {
    const proc = runtime!;
    await Promise.race([api.idle(), proc.exited, new Promise((r) => setTimeout(r, 5_000))]);
    const fate = proc.alive
      ? 'runtime alive'
      : `runtime pid ${proc.pid} exited with code ${proc.exitCode}: ${proc.stderr.trim().slice(-1200)}`;
    if (o.kind === 'process-exited') return `process exited mid-response; ${fate}`;
    if (o.kind === 'error') return `posted to /error (${o.errorType}); ${fate}`;
    if (!o.complete) return `cut off; ${fate}`;
    return o.errorType === undefined ? 'clean end' : 'error trailers';
  }

  /** Ended as a whole response: the terminating chunk came and no error trailer with it. */
  const endedCleanly = (o: InvocationOutcome) =>
    o.kind === 'response' && o.complete && o.errorType === undefined;

  const chat = (model: string, stream: boolean, token: string | null = TOKEN) =>
    functionUrlEvent('POST', '/v1/chat/completions', {
      headers: {
        ...(token === null ? {} : { authorization: `Bearer ${token}` }),
        'content-type': 'application/json',
      },
      body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }], stream }),
    });
  const native = (method: string, query = '') =>
    functionUrlEvent('POST', `/v1beta/models/${FLASH}:${method}`, {
      headers: { 'x-goog-api-key': TOKEN, 'content-type': 'application/json' },
      body: JSON.stringify({ contents: [{ role: 'user', parts: [{ text: 'hi' }] }] }),
      query,
    });

  it('streams an OpenAI chat completion: prelude with 200 and SSE, chunks as Gemini sends them, clean end', async () => {
    fake.options.streamChunkDelayMs = 120;
    const o = await invoke(chat(FLASH, true));

    expect(o.kind).toBe('response');
    expect(o.streaming).toBe(true);
    expect(o.requestHeaders['content-type']).toBe('application/vnd.awslambda.http-integration-response');
    expect(o.prelude?.statusCode).toBe(200);
    expect(o.prelude?.headers['content-type']).toMatch(/text\/event-stream/);
    expect(o.body.toString()).toContain('data: [DONE]');
    expect(endedCleanly(o)).toBe(true);
    // Written as they came: spread over the upstream's 4 × 120 ms gaps, not in one piece at the end.
    expect(o.chunks.length).toBeGreaterThanOrEqual(5);
    expect(o.chunks.at(-1)!.atMs - o.chunks[0]!.atMs).toBeGreaterThanOrEqual(400);
    await expectRuntimeSurvived();
  });

  it('streams native streamGenerateContent?alt=sse', async () => {
    const o = await invoke(native('streamGenerateContent', 'alt=sse'));

    expect(o.prelude?.statusCode).toBe(200);
    expect(o.prelude?.headers['content-type']).toMatch(/text\/event-stream/);
    const events = o.body
      .toString()
      .split(/\r?\n\r?\n/)
      .filter((e) => e.startsWith('data: '));
    expect(events).toHaveLength(5);
    expect(JSON.parse(events.at(-1)!.slice(6))).toMatchObject({ candidates: [{ finishReason: 'STOP' }] });
    expect(endedCleanly(o)).toBe(true);
    expect(fake.calls.at(-1)?.key).toMatch(/^fake-key-ric-/);
    await expectRuntimeSurvived();
  });

  it('refuses a request without a valid token with 401', async () => {
    const missing = await invoke(chat(FLASH, false, null));
    const wrong = await invoke(chat(FLASH, false, 'not-the-token'));

    for (const o of [missing, wrong]) {
      expect(o.prelude?.statusCode).toBe(401);
      expect(JSON.parse(o.body.toString())).toMatchObject({ error: { code: 'invalid_api_key' } });
      expect(endedCleanly(o)).toBe(true);
    }
    expect(fake.calls).toHaveLength(0);
    await expectRuntimeSurvived();
  });

  it('serves from local state while DynamoDB is down', async () => {
    await engine.stop();
    try {
      const plain = await invoke(chat(FLASH, false));
      const streamed = await invoke(chat(FLASH, true));

      expect(plain.prelude?.statusCode).toBe(200);
      expect(JSON.parse(plain.body.toString())).toMatchObject({ object: 'chat.completion' });
      expect(endedCleanly(plain)).toBe(true);
      expect(streamed.prelude?.statusCode).toBe(200);
      expect(streamed.body.toString()).toContain('data: [DONE]');
      expect(endedCleanly(streamed)).toBe(true);
      await expectRuntimeSurvived();
    } finally {
      await engine.start();
    }
  });

  it('answers 429 with Retry-After when every key is out of quota for the model', async () => {
    for (const key of KEYS) fake.setQuota(key, { limit: 0, windowMs: 60_000, model: PRO, retryDelay: '40s' });
    const o = await invoke(chat(PRO, false));

    expect(o.prelude?.statusCode).toBe(429);
    expect(Number(o.prelude?.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(JSON.parse(o.body.toString())).toMatchObject({ error: { type: 'rate_limit_error' } });
    expect(endedCleanly(o)).toBe(true);
    expect(new Set(fake.calls.filter((c) => c.status === 429).map((c) => c.key))).toEqual(new Set(KEYS));
    await expectRuntimeSurvived();
  });

  it('does not end a non-SSE body cut by Gemini midway as if whole, and the process survives', async () => {
    // Native streamGenerateContent without alt=sse: one JSON array, streamed; the fake resets the
    // connection after two of its frames.
    for (const key of KEYS) fake.failMidStream(key);
    const o = await invoke(native('streamGenerateContent'));
    const end = await howItEnded(o);

    expect(o.prelude?.statusCode).toBe(200);
    expect(o.prelude?.headers['content-type']).toMatch(/application\/json/);
    expect(o.body.toString()).toMatch(/^\[/);
    expect(() => JSON.parse(o.body.toString())).toThrow();
    // Not a clean end of a truncated body, and not a dead runtime: the runtime's error trailers.
    expect(end).toBe('error trailers');
    expect(o.kind === 'response' && o.errorType).toBe('BodyCutError');
    await expectRuntimeSurvived();
  });

  it('ends a non-SSE body that stalls before the function deadline, and the process survives', async () => {
    // 5 s for the function, 3 s kept back by the handler: the body stalls after its first frame.
    fake.options.streamChunkDelayMs = 8_000;
    const o = await invoke(native('streamGenerateContent'), 5_000);
    const end = await howItEnded(o);

    expect(o.prelude?.statusCode).toBe(200);
    expect(o.endedAt).toBeLessThan(o.deadlineAt);
    expect(end).toBe('error trailers');
    expect(o.kind === 'response' && o.errorType).toBe('BodyCutError');
    await expectRuntimeSurvived();
  });

  it('left no runtime process dead along the way', () => {
    expect(deaths.map((d) => `pid ${d.pid} exit ${d.code}: ${d.stderr.slice(-600)}`)).toEqual([]);
  });
});
