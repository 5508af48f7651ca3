import { beforeEach, describe, expect, it } from 'vitest';
import { MemoryKeyStateStore } from '../../lambda/adapters/state/memory-store.js';
import { parseConfig } from '../../lambda/core/config/parse.js';
import { keyId, Scrubber } from '../../lambda/core/credentials.js';
import type { ForwardJob } from '../../lambda/core/forwarding/attempts.js';
import { Forwarder } from '../../lambda/core/forwarding/forwarder.js';
import { buildGroup } from '../../lambda/core/forwarding/groups.js';
import { RequestLog } from '../../lambda/core/forwarding/request-log.js';
import {
  type ProxyResponse,
  type UpstreamClient,
  UpstreamError,
  type UpstreamRequest,
  type UpstreamResponse,
} from '../../lambda/core/http.js';
import { InstanceHealth } from '../../lambda/core/instance-health.js';
import type { RequestMetrics } from '../../lambda/core/metrics.js';
import { StateWrites } from '../../lambda/core/state-writes.js';

const KEYS = ['fake-key-fwd-0', 'fake-key-fwd-1', 'fake-key-fwd-2', 'fake-key-fwd-3'];
const MODEL = 'gemini-2.5-flash';
const TARGET = 'http://gemini.invalid/v1beta/openai/';
const silent = { debug() {}, info() {}, warn() {}, error() {} };
const encoder = new TextEncoder();

/** What a scripted key answers: a status and JSON body, or an error thrown before any headers. */
type Answer = { status: number; body?: unknown } | UpstreamError;

const ok: Answer = { status: 200, body: { choices: [{ message: { content: 'hi' } }] } };
const unavailable: Answer = {
  status: 503,
  body: { error: { code: 503, status: 'UNAVAILABLE', message: 'x' } },
};
const networkError = () => new UpstreamError('network', 'socket hang up');
const quota = (retryDelay: string): Answer => ({
  status: 429,
  body: {
    error: {
      code: 429,
      status: 'RESOURCE_EXHAUSTED',
      message: 'You exceeded your current quota.',
      details: [{ '@type': 'type.googleapis.com/google.rpc.RetryInfo', retryDelay }],
    },
  },
});
const dead = (status: 400 | 403, reason: string): Answer => ({
  status,
  body: {
    error: {
      code: status,
      status: status === 400 ? 'INVALID_ARGUMENT' : 'PERMISSION_DENIED',
      message: 'The key cannot be used.',
      details: [{ '@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason }],
    },
  },
});

/** An in-process Gemini: each key answers what was scripted for it, in order, then 200. */
class ScriptedUpstream implements UpstreamClient {
  /** Index (in KEYS) of the key each call was made with. */
  readonly calls: number[] = [];
  private readonly scripts = new Map<number, Answer[]>();

  script(key: number, ...answers: Answer[]): void {
    this.scripts.set(key, [...(this.scripts.get(key) ?? []), ...answers]);
  }

  async send(request: UpstreamRequest): Promise<UpstreamResponse> {
    const key = KEYS.indexOf(request.headers.authorization?.replace(/^Bearer /, '') ?? '');
    this.calls.push(key);
    const answer = this.scripts.get(key)?.shift() ?? ok;
    if (answer instanceof UpstreamError) throw answer;
    const text = JSON.stringify(answer.body ?? {});
    return {
      status: answer.status,
      headers: { 'content-type': 'application/json' },
      body: (async function* () {
        yield encoder.encode(text);
      })(),
    };
  }
}

async function text(response: ProxyResponse): Promise<string> {
  const { body } = response;
  if (typeof body === 'string') return body;
  if (body instanceof Uint8Array) return Buffer.from(body).toString('utf8');
  const chunks: Uint8Array[] = [];
  for await (const chunk of body) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

describe('Class: Forwarder', () => {
  const clock = { now: 1_750_000_000_000 };
  let upstream: ScriptedUpstream;
  let store: MemoryKeyStateStore;
  let metrics: RequestMetrics[];
  let writes: StateWrites;
  let seq = 0;

  beforeEach(() => {
    upstream = new ScriptedUpstream();
    store = new MemoryKeyStateStore();
    metrics = [];
  });

  /** A forwarder over one group of KEYS, with `policy` merged over quick retries. */
  function forwarder(policy: Record<string, unknown> = {}) {
    const config = parseConfig({
      client_tokens: ['client-token-fwd'],
      groups: [{ name: 'primary', api_keys: KEYS, target_url: TARGET }],
      upstream: { model_list_ms: 0 },
      policy: { transient_retry_delay_ms: 1, ...policy },
    });
    const now = () => clock.now;
    const health = new InstanceHealth(config.policy, now);
    writes = new StateWrites(store, silent);
    const forward = new Forwarder({
      config,
      store,
      upstream,
      logger: silent,
      now,
      scrubber: new Scrubber(KEYS),
      health,
      writes,
      requests: new RequestLog({
        logger: silent,
        metrics: { record: (m) => metrics.push(m) },
        now,
        openCircuits: () => health.openCircuits(),
      }),
    });
    const group = buildGroup(config.groups[0]!, config.upstream);
    const job = (): ForwardJob => ({
      request: {
        method: 'POST',
        path: '/v1/chat/completions',
        query: '',
        headers: { 'content-type': 'application/json' },
        body: undefined,
        requestId: `fwd-${++seq}`,
        signal: new AbortController().signal,
      },
      body: encoder.encode(JSON.stringify({ model: MODEL, messages: [] })),
      model: MODEL,
      target: { kind: 'openai', rest: 'chat/completions', query: '' },
      groups: [group],
      started: clock.now,
      client: undefined,
      generation: 'whole',
      tokens: 0,
    });
    /** Forwards one request and reads its whole answer (so a relayed one has ended and been logged). */
    return async () => {
      const response = await forward.forward(job());
      const body = await text(response);
      await writes.settle();
      return { response, body };
    };
  }

  async function view(index: number) {
    const [key] = await store.describe('primary', [keyId(KEYS[index]!)]);
    return key!;
  }

  it('answers with the first key it takes, in one call', async () => {
    // Prepare
    const forward = forwarder();

    // Act
    const { response, body } = await forward();

    // Assess
    expect(response.status).toBe(200);
    expect(JSON.parse(body)).toEqual(ok instanceof UpstreamError ? undefined : ok.body);
    expect(response.headers['x-upstream-attempts']).toBe('1');
    expect(upstream.calls).toEqual([0]);
    expect(metrics).toEqual([expect.objectContaining({ status: 200, attempts: 1, group: 'primary' })]);
  });

  it('rotates to the next key on a 429 and cools that key×model for RetryInfo’s delay', async () => {
    // Prepare
    const forward = forwarder();
    upstream.script(0, quota('30s'));

    // Act
    const { response } = await forward();

    // Assess
    expect(response.status).toBe(200);
    expect(upstream.calls).toEqual([0, 1]);
    expect(response.headers['x-upstream-attempts']).toBe('2');
    expect((await view(0)).cooldowns.get(MODEL)).toEqual({ until: clock.now + 30_000, cause: 'rpm' });
    expect((await view(1)).cooldowns.size).toBe(0);
    expect(metrics[0]).toMatchObject({ upstreamErrors: { quota: 1 }, keyCooldowns: 1, refusal: undefined });
  });

  it('retries a transient 503 on the same key, then cools it briefly and rotates', async () => {
    // Prepare
    const forward = forwarder({ transient_retries: 2, transient_cooldown_ms: 5_000 });
    upstream.script(0, unavailable, unavailable, unavailable);

    // Act
    const { response } = await forward();

    // Assess: the first call and two retries on key 0, then key 1
    expect(response.status).toBe(200);
    expect(upstream.calls).toEqual([0, 0, 0, 1]);
    expect(response.headers['x-upstream-attempts']).toBe('4');
    expect((await view(0)).cooldowns.get(MODEL)).toEqual({ until: clock.now + 5_000, cause: 'transient' });
    expect((await view(0)).status).toBe('active');
    expect(metrics[0]).toMatchObject({ retries: 2, upstreamErrors: { transient: 3 } });
  });

  it('retries a network error on the same key', async () => {
    // Prepare
    const forward = forwarder({ transient_retries: 2 });
    upstream.script(0, networkError());

    // Act
    const { response } = await forward();

    // Assess
    expect(response.status).toBe(200);
    expect(upstream.calls).toEqual([0, 0]);
  });

  it.each([
    [400, 'API_KEY_INVALID'],
    [403, 'CONSUMER_SUSPENDED'],
    [403, 'SERVICE_DISABLED'],
  ] as const)(
    'takes a key answered %i %s out of rotation and serves with the next',
    async (status, reason) => {
      // Prepare
      const forward = forwarder();
      upstream.script(0, dead(status, reason));

      // Act
      const first = await forward();
      const later = await forward();

      // Assess: key 0 is invalid, and the rotation passes it by from then on
      expect(first.response.status).toBe(200);
      expect(later.response.status).toBe(200);
      expect(await view(0)).toMatchObject({ status: 'invalid', reason });
      expect(upstream.calls).toEqual([0, 1, 2]);
      expect(metrics[0]).toMatchObject({ upstreamErrors: { deadKey: 1 } });
    },
  );

  it('passes a 403 that names no dead key back to the client, key untouched', async () => {
    // Prepare
    const forward = forwarder();
    upstream.script(0, {
      status: 403,
      body: { error: { code: 403, message: 'Not allowed for this project.' } },
    });

    // Act
    const { response } = await forward();

    // Assess
    expect(response.status).toBe(403);
    expect(upstream.calls).toEqual([0]);
    expect((await view(0)).status).toBe('active');
  });

  it('stops at max_attempts and answers the last transient failure', async () => {
    // Prepare: every key keeps failing
    const forward = forwarder({ max_attempts: 3, transient_retries: 0, circuit_failure_threshold: 0 });
    for (let key = 0; key < KEYS.length; key++) upstream.script(key, unavailable, unavailable);

    // Act
    const { response } = await forward();

    // Assess
    expect(response.status).toBe(503);
    expect(upstream.calls).toEqual([0, 1, 2]);
    expect(response.headers['x-upstream-attempts']).toBe('3');
  });

  it('refuses with keys_exhausted, not a 503, when its attempts ran out on 429s', async () => {
    // Prepare
    const forward = forwarder({ max_attempts: 2 });
    upstream.script(0, quota('30s'));
    upstream.script(1, quota('20s'));

    // Act
    const { response, body } = await forward();

    // Assess: Retry-After is the sooner of the two cooldowns this request set
    expect(response.status).toBe(429);
    expect(response.headers['retry-after']).toBe('20');
    expect(JSON.parse(body)).toMatchObject({ error: { code: 'keys_exhausted' } });
    expect(upstream.calls).toEqual([0, 1]);
  });

  it('refuses with keys_exhausted and Retry-After once every key is cooling, then without calling Gemini', async () => {
    // Prepare: each key's quota is spent, for a different time
    const forward = forwarder();
    ['30s', '20s', '40s', '50s'].forEach((delay, key) => {
      upstream.script(key, quota(delay));
    });

    // Act
    const first = await forward();
    const second = await forward();

    // Assess: the first request tried every key; the second none; both name the soonest key's wait
    for (const { response, body } of [first, second]) {
      expect(response.status).toBe(429);
      expect(response.headers['retry-after']).toBe('20');
      expect(JSON.parse(body)).toMatchObject({ error: { code: 'keys_exhausted', type: 'rate_limit_error' } });
    }
    expect(first.response.headers['x-upstream-attempts']).toBe('4');
    expect(second.response.headers['x-upstream-attempts']).toBe('0');
    expect(upstream.calls).toEqual([0, 1, 2, 3]);
    expect(metrics.map((m) => m.refusal)).toEqual(['keys_exhausted', 'keys_exhausted']);
  });
});
