import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GeminiProxyStack } from '../../lib/gemini-proxy-stack.js';
import { type DynamoEngine, startDynamoEngine } from '../support/dynamo-engine.js';
import { type FakeGemini, startFakeGemini } from '../support/fake-gemini.js';
import { functionUrlEvent, installAwsLambdaStub, invokeStreaming } from '../support/lambda-stub.js';
import { type SecretsDouble, startSecretsDouble } from '../support/secrets-double.js';
import { startSocks5Server } from '../support/socks5-server.js';
import { tempDirs } from '../support/temp-dir.js';

const tempDir = tempDirs();
const KEYS = ['fake-key-bundle-0001', 'fake-key-bundle-0002'];
const NEW_KEY = 'fake-key-bundle-0003';
const TOKEN = 'bundle-client-token-secret';
const KEYS_SECRET = 'arn:aws:secretsmanager:us-east-1:000000000000:secret:keys';
const TOKENS_SECRET = 'arn:aws:secretsmanager:us-east-1:000000000000:secret:tokens';
const CACHE_MS = 400;
const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

type Handler = Parameters<typeof invokeStreaming>[0];

/**
 * The exact bundle CDK would upload, run here: synthesized into cdk.out, imported with the Lambda
 * streaming globals stubbed, and invoked with function URL events against a real DynamoDB engine, a fake
 * Gemini and a Secrets Manager double the bundled SDK reaches through AWS_ENDPOINT_URL_SECRETS_MANAGER.
 */
describe('Bundle: the proxy function asset from cdk.out', () => {
  let engine: DynamoEngine;
  let fake: FakeGemini;
  let secrets: SecretsDouble;
  let handler: Handler;
  let bundlePath: string;
  const saved = { ...process.env };

  const keysSecret = (keys: string[], targetUrl: string) =>
    JSON.stringify({ groups: [{ name: 'primary', api_keys: keys, target_url: targetUrl }] });

  beforeAll(async () => {
    // Prepare: synthesize and find the function's asset
    const outdir = tempDir('gp-bundle-');
    const app = new App({ outdir });
    const stack = new GeminiProxyStack(app, 'Bundle');
    app.synth();
    const fn = Object.values(Template.fromStack(stack).findResources('AWS::Lambda::Function'))[0]!;
    const assetHash = String(fn.Properties.Code.S3Key).replace(/\.zip$/, '');
    bundlePath = join(outdir, `asset.${assetHash}`, 'index.mjs');

    engine = await startDynamoEngine();
    fake = await startFakeGemini({ keys: [...KEYS, NEW_KEY] });
    secrets = await startSecretsDouble({
      [KEYS_SECRET]: '{"groups":[]}',
      [TOKENS_SECRET]: '{"tokens":[]}',
    });
    Object.assign(process.env, {
      TABLE_NAME: engine.table,
      KEYS_SECRET_ID: KEYS_SECRET,
      TOKENS_SECRET_ID: TOKENS_SECRET,
      SECRET_CACHE_MS: String(CACHE_MS),
      LOG_LEVEL: 'warn',
      METRICS_NAMESPACE: 'BundleTest',
      PROXY_SETTINGS: JSON.stringify({
        state: { endpoint: engine.endpoint, cache_ms: 0 },
        policy: { transient_retry_delay_ms: 5 },
        // No background model-list read (it would go to Gemini's real address).
        upstream: { model_list_ms: 0 },
      }),
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: 'local',
      AWS_SECRET_ACCESS_KEY: 'local',
      AWS_ENDPOINT_URL_SECRETS_MANAGER: secrets.endpoint,
    });
    installAwsLambdaStub();
    ({ handler } = (await import(pathToFileURL(bundlePath).href)) as { handler: Handler });
  });

  afterAll(async () => {
    for (const name of Object.keys(process.env)) if (!(name in saved)) delete process.env[name];
    await secrets.close();
    await fake.close();
    await engine.close();
  });

  const chat = (stream = false, token = TOKEN) =>
    functionUrlEvent('POST', '/v1/chat/completions', {
      headers: {
        authorization: `Bearer ${token}`,
        'content-type': 'application/json',
        'accept-encoding': 'gzip',
      },
      body: JSON.stringify({
        model: 'gemini-2.5-flash',
        messages: [{ role: 'user', content: 'hi' }],
        stream,
      }),
    });
  const waitForCache = () => new Promise((r) => setTimeout(r, CACHE_MS + 50));

  it('is a single ESM file within the size budget', () => {
    expect(existsSync(bundlePath)).toBe(true);
    expect(statSync(bundlePath).size).toBeLessThanOrEqual(350 * 1024);
  });

  it('leaves out the local server and its Prometheus metrics (prom-client)', () => {
    const bundle = readFileSync(bundlePath, 'utf8');
    expect(bundle).not.toContain('text/plain; version=0.0.4');
    expect(bundle).not.toContain('gemini_proxy_requests_total');
    expect(bundle).not.toContain('config rejected; keeping the running configuration');
  });

  it('answers 503 "not configured yet" while the secrets hold their placeholders', async () => {
    const result = await invokeStreaming(handler, chat());
    expect(result.prelude?.statusCode).toBe(503);
    expect(JSON.parse(result.body)).toMatchObject({ error: { code: 'proxy_not_configured' } });
    expect(fake.calls).toHaveLength(0);
    const health = await invokeStreaming(handler, functionUrlEvent('GET', '/health'));
    expect(health.prelude?.statusCode).toBe(503);
    expect(JSON.parse(health.body)).toEqual({ status: 'unconfigured' });
  });

  it('picks up keys and token hashes put into the secrets after the cache age', async () => {
    // Act: the operator fills both secrets
    secrets.values.set(KEYS_SECRET, keysSecret(KEYS, fake.openAiBase));
    secrets.values.set(TOKENS_SECRET, JSON.stringify({ tokens: [{ sha256: sha256(TOKEN) }] }));
    await waitForCache();
    const event = chat();
    const result = await invokeStreaming(handler, event);

    // Assess: served, with the function URL request id as the correlation id
    expect(result.prelude?.statusCode).toBe(200);
    expect(result.prelude?.headers['x-request-id']).toBe(
      (event.requestContext as { requestId: string }).requestId,
    );
    expect(result.prelude?.headers['content-encoding']).toBeUndefined();
    expect(JSON.parse(result.body)).toMatchObject({ object: 'chat.completion' });
    expect(fake.calls.at(-1)?.headers['accept-encoding']).toBeUndefined();
  });

  it('refuses a request without a token with 401', async () => {
    const result = await invokeStreaming(handler, functionUrlEvent('GET', '/v1/models', { headers: {} }));
    expect(result.prelude?.statusCode).toBe(401);
    expect(JSON.parse(result.body)).toMatchObject({ error: { code: 'invalid_api_key' } });
  });

  it('streams: prelude with the status and SSE type, then chunks written as Gemini sends them', async () => {
    // Prepare
    fake.options.streamChunkDelayMs = 120;

    // Act
    const result = await invokeStreaming(handler, chat(true));
    fake.options.streamChunkDelayMs = 0;

    // Assess
    expect(result.prelude?.statusCode).toBe(200);
    expect(result.prelude?.headers['content-type']).toMatch(/text\/event-stream/);
    expect(result.body).toContain('data: [DONE]');
    expect(result.writes.length).toBeGreaterThanOrEqual(5);
    expect(result.writes.at(-1)! - result.writes[0]!).toBeGreaterThanOrEqual(4 * 100);
  });

  it('rotates away from a key that answered 429', async () => {
    // Prepare: the first key is out of quota for a minute
    fake.setQuota(KEYS[0]!, { limit: 0, windowMs: 60_000, retryDelay: '50s' });
    const before = fake.calls.length;

    // Act
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++)
      statuses.push((await invokeStreaming(handler, chat())).prelude?.statusCode ?? 0);

    // Assess: every answer is 200; key 0 was asked once, then left alone
    expect(statuses).toEqual([200, 200, 200, 200]);
    const used = fake.calls.slice(before);
    expect(used.filter((c) => c.key === KEYS[0])).toHaveLength(1);
    expect(used.filter((c) => c.key === KEYS[1] && c.status === 200)).toHaveLength(4);
    fake.reset();
  });

  it('keeps the last good secret when Secrets Manager fails, and when an edit is malformed', async () => {
    // Act 1: the double fails past the cache age
    secrets.failing = true;
    await waitForCache();
    const fetchesBefore = secrets.calls.length;
    const duringOutage = await invokeStreaming(handler, chat());
    const fetchedDuringOutage = secrets.calls.length - fetchesBefore;
    secrets.failing = false;

    // Act 2: a malformed edit lands
    secrets.values.set(KEYS_SECRET, '{"groups": [ {"name": "x", "api_keys": [] } ]}');
    await waitForCache();
    const afterBadEdit = await invokeStreaming(handler, chat());

    // Act 3: a good edit with a new key
    secrets.values.set(KEYS_SECRET, keysSecret([NEW_KEY], fake.openAiBase));
    await waitForCache();
    const afterGoodEdit = await invokeStreaming(handler, chat());

    // Assess
    expect(fetchedDuringOutage).toBeGreaterThan(0);
    expect(duringOutage.prelude?.statusCode).toBe(200);
    expect(afterBadEdit.prelude?.statusCode).toBe(200);
    expect(afterGoodEdit.prelude?.statusCode).toBe(200);
    expect(fake.calls.at(-1)?.key).toBe(NEW_KEY);
  });

  it('ends a stream at the function deadline with an SSE error event, and answers 504 if Gemini never did', async () => {
    // Prepare: the function has 3.4 s left; the handler keeps a 3 s margin, so 400 ms for the request
    fake.options.streamChunkDelayMs = 150;

    // Act
    const stream = await invokeStreaming(handler, chat(true), 3400);
    fake.options.streamChunkDelayMs = 0;
    for (const key of [...KEYS, NEW_KEY]) fake.hangNext(key);
    const hung = await invokeStreaming(handler, chat(), 3400);
    fake.reset();

    // Assess
    expect(stream.prelude?.statusCode).toBe(200);
    const events = stream.body.split('\n\n').filter((e) => e.startsWith('data: '));
    expect(JSON.parse(events.at(-1)!.slice(6))).toMatchObject({ error: { code: 'deadline_exceeded' } });
    expect(stream.body).not.toContain('[DONE]');
    expect(hung.prelude?.statusCode).toBe(504);
  });

  it('sends the status even when the body is empty', async () => {
    const result = await invokeStreaming(
      handler,
      functionUrlEvent('HEAD', '/v1/models', { headers: { authorization: `Bearer ${TOKEN}` } }),
    );
    expect(result.prelude?.statusCode).toEqual(expect.any(Number));
  });

  it('serves the last good secret within a second while Secrets Manager hangs', async () => {
    secrets.hanging = true;
    await waitForCache();
    const started = Date.now();
    const result = await invokeStreaming(handler, chat());
    secrets.hanging = false;
    expect(result.prelude?.statusCode).toBe(200);
    expect(Date.now() - started).toBeLessThan(1800);
  });

  it('serves a group through its SOCKS5 proxy, credentials from the keys secret', async () => {
    // Prepare: the operator moves the group behind an authenticated SOCKS5 proxy
    const socks = await startSocks5Server({ auth: { username: 'gw', password: 'bundle-proxy-pass' } });
    const group = { name: 'primary', api_keys: KEYS, target_url: fake.openAiBase };
    const proxied = { ...group, proxy_url: `socks5h://gw:bundle-proxy-pass@127.0.0.1:${socks.port}` };
    secrets.values.set(KEYS_SECRET, JSON.stringify({ groups: [proxied] }));
    await waitForCache();
    try {
      // Act: until the instance has read the edit (one cache age, or a little more after the hangs above)
      let result = await invokeStreaming(handler, chat(true));
      for (let i = 0; i < 10 && socks.tunnels === 0; i++) {
        await waitForCache();
        result = await invokeStreaming(handler, chat(true));
      }

      // Assess: streamed through the tunnel
      expect(result.prelude?.statusCode).toBe(200);
      expect(result.body).toContain('data: [DONE]');
      expect(socks.tunnels).toBeGreaterThan(0);
    } finally {
      secrets.values.set(KEYS_SECRET, JSON.stringify({ groups: [group] }));
      await waitForCache();
      await socks.close();
    }
  });

  it('stops serving when the operator empties the tokens secret (revocation)', async () => {
    secrets.values.set(TOKENS_SECRET, '{"tokens":[]}');
    await new Promise((r) => setTimeout(r, 3500)); // past the cache age and the hung fetch's SDK timeout
    const result = await invokeStreaming(handler, chat());
    expect(result.prelude?.statusCode).toBe(503);
    expect(JSON.parse(result.body)).toMatchObject({ error: { code: 'proxy_not_configured' } });
  });
});
