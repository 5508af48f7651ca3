import { createHash } from 'node:crypto';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { JsonLogger } from '../../lambda/adapters/logger.js';
import { DynamoDbUsageSource } from '../../lambda/adapters/state/dynamodb/usage-ledger.js';
import { MemoryKeyStateStore } from '../../lambda/adapters/state/memory-store.js';
import { keyId } from '../../lambda/core/credentials.js';
import type { ProxyRequest } from '../../lambda/core/http.js';
import type { KeyStateStore } from '../../lambda/core/key-state/port.js';
import { readUsage } from '../../lambda/core/usage-rows.js';
import { ProxyRuntime } from '../../lambda/proxy/runtime.js';
import { type DynamoEngine, startDynamoEngine, testClient } from '../support/dynamo-engine.js';
import { type FakeGemini, startFakeGemini } from '../support/fake-gemini.js';

const KEYS = ['fake-key-runtime-001', 'fake-key-runtime-002', 'fake-key-runtime-003'];
const TOKEN = 'runtime-client-token-secret';
const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');
const secrets = mockClient(SecretsManagerClient);

/** The Lambda instance's runtime across edits of its keys secret (Secrets Manager mocked, a real engine). */
describe('Class: ProxyRuntime', () => {
  let engine: DynamoEngine;
  let fake: FakeGemini;
  let seq = 0;
  const values = { keys: '', tokens: JSON.stringify({ tokens: [{ sha256: sha256(TOKEN) }] }) };
  const keysSecret = (keys: string[]) =>
    JSON.stringify({ groups: [{ name: 'primary', api_keys: keys, target_url: fake.openAiBase }] });

  beforeAll(async () => {
    engine = await startDynamoEngine();
    fake = await startFakeGemini({ keys: KEYS });
  });
  afterAll(async () => {
    await fake.close();
    await engine.close();
  });
  afterEach(() => {
    secrets.reset();
    fake.reset();
    vi.restoreAllMocks();
  });

  /** A runtime on the fake and the engine; `settings` (policy, upstream) are merged over the defaults here. */
  function runtime(
    state: Record<string, unknown> = {},
    store?: KeyStateStore,
    settings: { policy?: Record<string, unknown>; upstream?: Record<string, unknown> } = {},
  ): ProxyRuntime {
    secrets.on(GetSecretValueCommand).callsFake((input: { SecretId: string }) => ({
      SecretString: input.SecretId === 'keys' ? values.keys : values.tokens,
    }));
    return new ProxyRuntime(
      {
        TABLE_NAME: engine.table,
        KEYS_SECRET_ID: 'keys',
        TOKENS_SECRET_ID: 'tokens',
        SECRET_CACHE_MS: '0',
        METRICS_NAMESPACE: 'RuntimeTest',
        PROXY_SETTINGS: JSON.stringify({
          state: { endpoint: engine.endpoint, cache_ms: 0, ...state },
          policy: {
            transient_retries: 0,
            transient_cooldown_ms: 0,
            transient_retry_delay_ms: 1,
            ...settings.policy,
          },
          // No background model-list read unless asked for (it would go to Gemini's real address).
          upstream: { model_list_ms: 0, ...settings.upstream },
        }),
      },
      {
        logger: new JsonLogger('error', () => undefined),
        secrets: new SecretsManagerClient({ region: 'us-east-1' }),
        store,
      },
    );
  }

  const request = (path: string, body?: unknown): ProxyRequest => ({
    method: body === undefined ? 'GET' : 'POST',
    path,
    query: '',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : new TextEncoder().encode(JSON.stringify(body)),
    requestId: `r${++seq}`,
    signal: new AbortController().signal,
  });
  const chat = { model: 'gemini-2.5-flash', messages: [{ role: 'user', content: 'hi' }] };

  async function detailed(rt: ProxyRuntime) {
    const res = await rt.handle(request('/health/detailed'));
    return JSON.parse(String(res.body)) as {
      groups: Array<{ keys: Array<{ id: string; score: number }> }>;
      circuits: Array<{ target: string; state: string }>;
    };
  }

  async function scores(rt: ProxyRuntime): Promise<Record<string, number>> {
    const body = await detailed(rt);
    return Object.fromEntries(body.groups[0]!.keys.map((k) => [k.id, k.score]));
  }

  const errorCode = (body: unknown) => (JSON.parse(String(body)) as { error: { code: string } }).error.code;

  it('keeps what it learnt of keys (scores) when the keys secret changes', async () => {
    // Prepare: one key; it fails once, then serves: its score records the failure
    values.keys = keysSecret(KEYS.slice(0, 1));
    const rt = runtime();
    fake.failNext(KEYS[0]!, 1, 503);
    expect((await rt.handle(request('/v1/chat/completions', chat))).status).toBe(503);
    expect((await rt.handle(request('/v1/chat/completions', chat))).status).toBe(200);
    const failed = keyId(KEYS[0]!);
    expect((await scores(rt))[failed]).toBe(0.84);

    // Act: the operator adds a key
    values.keys = keysSecret(KEYS);
    const after = await scores(rt);

    // Assess: the new configuration serves, and key 0's score is still what it was
    expect(Object.keys(after)).toHaveLength(3);
    expect(after[failed]).toBe(0.84);
    await rt.settle();
  });

  it('keeps open circuits, and the scores of keys it keeps, when the keys secret changes', async () => {
    // Prepare: one key; it fails once, then serves (its score records the failure); then two requests
    // fail at the target and open its circuit
    values.keys = keysSecret(KEYS.slice(0, 1));
    const rt = runtime({}, undefined, { policy: { circuit_failure_threshold: 2, circuit_open_ms: 60_000 } });
    fake.failNext(KEYS[0]!, 1, 503);
    expect((await rt.handle(request('/v1/chat/completions', chat))).status).toBe(503);
    expect((await rt.handle(request('/v1/chat/completions', chat))).status).toBe(200);
    const kept = keyId(KEYS[0]!);
    const score = (await scores(rt))[kept];
    fake.failNext(KEYS[0]!, 2, 503);
    for (let i = 0; i < 2; i++) {
      expect((await rt.handle(request('/v1/chat/completions', chat))).status).toBe(503);
    }
    const calls = fake.calls.length;

    // Act: the operator adds keys; Gemini at the target would now answer
    values.keys = keysSecret(KEYS);
    const refused = await rt.handle(request('/v1/chat/completions', chat));
    const after = await detailed(rt);

    // Assess: the new configuration serves all three keys, but the circuit its predecessor opened still
    // holds requests back without a Gemini call; the kept key's score is what it was
    expect(after.groups[0]!.keys).toHaveLength(3);
    expect(refused.status).toBe(503);
    expect(errorCode(refused.body)).toBe('circuit_open');
    expect(refused.headers['x-upstream-attempts']).toBe('0');
    expect(fake.calls).toHaveLength(calls);
    expect(after.circuits).toEqual([expect.objectContaining({ target: fake.openAiBase, state: 'open' })]);
    expect(score).toBe(0.84);
    expect((await scores(rt))[kept]).toBe(score);
    await rt.settle();
  });

  it('keeps the model list it read when the keys secret changes', async () => {
    // Prepare: the list is read (in the background, after the first request) from the fake
    values.keys = keysSecret(KEYS.slice(0, 1));
    const rt = runtime({}, undefined, { upstream: { native_base_url: fake.url, model_list_ms: 3_600_000 } });
    expect((await rt.handle(request('/v1/chat/completions', chat))).status).toBe(200);
    const listings = () => fake.calls.filter((c) => c.path === '/v1beta/models' && c.status === 200);
    for (let i = 0; i < 100 && listings().length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    const madeUp = { ...chat, model: 'made-up-model' };
    expect((await rt.handle(request('/v1/chat/completions', madeUp))).status).toBe(404);

    // Act: the operator adds keys
    values.keys = keysSecret(KEYS);
    const after = await rt.handle(request('/v1/chat/completions', madeUp));

    // Assess: the new configuration knows the list at once (no fail-open gap) and did not read it again
    expect(after.status).toBe(404);
    expect(errorCode(after.body)).toBe('model_not_found');
    expect(listings()).toHaveLength(1);
    await rt.settle();
  });

  it('reads a malformed keys secret once, not again on every request until it changes', async () => {
    // Prepare: a good configuration, then an edit that is JSON but not a valid configuration
    values.keys = keysSecret(KEYS);
    const rt = runtime();
    expect((await rt.handle(request('/health'))).status).toBe(200);
    const malformed = JSON.stringify({ groups: [{ name: 'primary', api_keys: [] }] });
    values.keys = malformed;
    const parse = vi.spyOn(JSON, 'parse');

    // Act
    for (let i = 0; i < 5; i++) expect((await rt.handle(request('/health'))).status).toBe(200);

    // Assess: the last good configuration served; the edit was parsed once
    expect(parse.mock.calls.filter(([text]) => text === malformed)).toHaveLength(1);
    await rt.settle();
  });

  it('awaits the state writes of a configuration replaced mid-invocation before the stream ends', async () => {
    // Prepare: a store whose cooldown writes finish only when the test says so; the only key answers 429
    let release = () => {};
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    const memory = new MemoryKeyStateStore();
    const store: KeyStateStore = {
      acquire: (r) => memory.acquire(r),
      describe: (g, ids) => memory.describe(g, ids),
      flush: () => memory.flush(),
      record: async (u) => {
        if (u.kind === 'cooldown') await held;
        return memory.record(u);
      },
    };
    values.keys = keysSecret(KEYS.slice(0, 1));
    const rt = runtime({}, store);
    fake.setQuota(KEYS[0]!, { limit: 0, windowMs: 60_000, model: 'gemini-2.5-flash' });
    expect((await rt.handle(request('/v1/chat/completions', chat))).status).toBe(429);

    // Act: the keys change (a new configuration is built), then the invocation settles
    values.keys = keysSecret(KEYS);
    expect((await rt.handle(request('/health'))).status).toBe(200);
    let settled = false;
    const settling = rt.settle().then(() => {
      settled = true;
    });
    await new Promise((resolve) => setTimeout(resolve, 50));

    // Assess: settling waits for the old configuration's write, and ends once it is done
    expect(settled).toBe(false);
    release();
    await settling;
    const [view] = await memory.describe('primary', [keyId(KEYS[0]!)]);
    expect(view!.cooldowns.get('gemini-2.5-flash')).toBeDefined();
  });

  it('counts each invocation in the usage table under the token name from the secret, by its end', async () => {
    // Prepare: the tokens secret names its client (earlier tests' requests count under the same id)
    values.keys = keysSecret(KEYS.slice(0, 1));
    const previous = values.tokens;
    values.tokens = JSON.stringify({ tokens: [{ sha256: sha256(TOKEN), name: 'runtime-ci' }] });
    const rt = runtime();
    const source = new DynamoDbUsageSource(testClient(engine.endpoint), engine.table);
    const id = sha256(TOKEN).slice(0, 16);
    const counted = async () => {
      const rows = await readUsage(source, { days: 2, by: 'client', now: Date.now() });
      const mine = rows.filter((r) => r.clientId === id);
      const sum = (f: (r: (typeof rows)[number]) => number) => mine.reduce((n, r) => n + f(r), 0);
      return {
        names: mine.map((r) => r.client),
        requests: sum((r) => r.requests),
        errors: sum((r) => r.errors),
        inputTokens: sum((r) => r.inputTokens),
      };
    };
    try {
      const baseline = await counted();

      // Act
      const res = await rt.handle(request('/v1/chat/completions', chat));
      // As the handler does: the answer streams out, then the invocation settles.
      let text = '';
      for await (const chunk of res.body as AsyncIterable<Uint8Array>) text += Buffer.from(chunk).toString();
      const during = await counted();
      await rt.settle();

      // Assess: nothing written during the request; one request, named, once the invocation settled
      expect(res.status).toBe(200);
      const usage = /"prompt_tokens":(\d+)/.exec(text);
      expect(during).toEqual(baseline);
      const after = await counted();
      expect(after.requests).toBe(baseline.requests + 1);
      expect(after.errors).toBe(baseline.errors);
      expect(after.inputTokens).toBe(baseline.inputTokens + Number(usage![1]));
      expect(after.names).toContain('runtime-ci');
    } finally {
      values.tokens = previous;
    }
  });
});
