import net from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  chatBody,
  type Harness,
  KEYS,
  leaks,
  MODEL,
  postChat,
  startHarness,
  TOKEN,
} from '../support/harness.js';

/**
 * Sends bytes over a plain TCP socket and returns whatever the server answered before closing or going
 * quiet: the way to send what fetch refuses to (hop-by-hop headers, raw paths, bodies that never end).
 */
function rawExchange(url: string, head: string, body: Buffer[] = []): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect(Number(new URL(url).port), '127.0.0.1', () => {
      socket.write(head);
      for (const b of body) socket.write(b);
    });
    let data = '';
    socket.on('data', (d) => {
      data += d.toString();
    });
    socket.on('error', () => resolve(data));
    socket.on('close', () => resolve(data));
    setTimeout(() => socket.destroy(), 1500);
  });
}

describe('Integration: HTTP surface of the local server', () => {
  let h: Harness;

  beforeAll(async () => {
    h = await startHarness({ config: { server: { max_body_bytes: 64 * 1024 } } });
  });
  beforeEach(() => {
    h.fake.reset();
    h.fake.options.streamChunkDelayMs = 0;
  });
  afterAll(async () => {
    expect(leaks(h)).toEqual([]);
    await h.close();
  });

  /** Proves the server is still serving after an error. */
  async function stillServes(): Promise<void> {
    expect((await postChat(h)).status).toBe(200);
  }

  it('answers /health without a token', async () => {
    const res = await fetch(`${h.url}/health`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'ok' });
  });

  it('requires the token for /health/detailed and shows key ids only', async () => {
    expect((await fetch(`${h.url}/health/detailed`)).status).toBe(401);
    const res = await fetch(`${h.url}/health/detailed`, { headers: { authorization: `Bearer ${TOKEN}` } });
    const body = (await res.json()) as { groups: Array<{ total: number; counts: Record<string, number> }> };
    expect(body.groups[0]).toMatchObject({
      total: 4,
      counts: { active: 4, cooling: 0, invalid: 0, disabled: 0 },
    });
  });

  it.each([
    ['no token', {}],
    ['a wrong bearer token', { authorization: 'Bearer nope' }],
    ['a wrong x-goog-api-key', { 'x-goog-api-key': 'nope' }],
    ['an empty bearer', { authorization: 'Bearer ' }],
  ])('refuses %s with 401 in OpenAI shape, without calling Gemini', async (_name, headers) => {
    const res = await fetch(`${h.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: chatBody(),
    });
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({
      error: { type: 'invalid_request_error', code: 'invalid_api_key', param: null },
    });
    expect(h.fake.calls).toHaveLength(0);
    await stillServes();
  });

  it('answers unknown paths with 404 in OpenAI shape', async () => {
    const res = await fetch(`${h.url}/admin`);
    expect(res.status).toBe(404);
    expect(await res.json()).toMatchObject({ error: { code: 'not_found' } });
  });

  it('answers malformed JSON with 400 and keeps serving', async () => {
    const res = await postChat(h, '{"model": "gemini-2.5-flash", ');
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({
      error: { type: 'invalid_request_error', code: 'invalid_json' },
    });
    expect(h.fake.calls).toHaveLength(0);
    await stillServes();
  });

  it('answers an oversize chunked body (no Content-Length) with 413 and keeps serving', async () => {
    // Prepare: 100 KiB in one chunk against a 64 KiB limit; no Content-Length to trust
    const big = Buffer.alloc(100 * 1024, 'a');
    const head =
      `POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${TOKEN}\r\n` +
      'content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n';

    // Act
    const answer = await rawExchange(h.url, head, [
      Buffer.from(`${big.length.toString(16)}\r\n`),
      big,
      Buffer.from('\r\n0\r\n\r\n'),
    ]);

    // Assess
    expect(answer).toMatch(/^HTTP\/1\.1 413 /);
    expect(answer).toContain('"code":"request_too_large"');
    expect(h.fake.calls).toHaveLength(0);
    await stillServes();
  });

  it('answers a path that could escape the target (backslashes, bad escapes) with 404, calling nobody', async () => {
    for (const path of ['/v1/..\\..\\secret-path', '/v1beta/models/%E0%A4%A:generateContent']) {
      const answer = await rawExchange(
        h.url,
        `GET ${path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${TOKEN}\r\nconnection: close\r\n\r\n`,
      );
      expect(answer).toMatch(/^HTTP\/1\.1 404 /);
      expect(answer).toContain('x-request-id: ');
    }
    expect(h.fake.calls).toHaveLength(0);
  });

  it('drops hop-by-hop headers, including those named in Connection', async () => {
    const body = chatBody();
    const answer = await rawExchange(
      h.url,
      'POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n' +
        `authorization: Bearer ${TOKEN}\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n` +
        'connection: close, accept\r\naccept: text/plain\r\nkeep-alive: timeout=5\r\nte: trailers\r\n\r\n' +
        body,
    );
    expect(answer).toMatch(/^HTTP\/1\.1 200 /);
    const headers = h.fake.calls[0]?.headers ?? {};
    // accept passes the allow-list, but not when Connection names it hop-by-hop
    expect(headers.accept).toBeUndefined();
    expect(headers['keep-alive']).toBeUndefined();
    expect(headers.te).toBeUndefined();
    expect(headers['content-type']).toBe('application/json');
  });

  it('never forwards the client credential or accept-encoding; returns x-request-id', async () => {
    const res = await postChat(h, chatBody(), {
      'accept-encoding': 'gzip, br',
      'x-goog-api-key': TOKEN,
      'x-custom-header': 'dropped',
      'proxy-authorization': 'Basic abc',
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    const [call] = h.fake.calls;
    expect(call?.headers.authorization).toMatch(/^Bearer fake-key-/);
    expect(call?.headers['x-goog-api-key']).toBeUndefined();
    expect(call?.headers['accept-encoding']).toBeUndefined();
    expect(call?.headers['proxy-authorization']).toBeUndefined();
    expect(call?.headers['x-custom-header']).toBeUndefined();
    expect(JSON.stringify(call?.headers)).not.toContain(TOKEN);
  });

  describe('native Gemini API', () => {
    it('forwards generateContent with the key in x-goog-api-key, never in the URL', async () => {
      const res = await fetch(`${h.url}/v1beta/models/${MODEL}:generateContent`, {
        method: 'POST',
        headers: { 'x-goog-api-key': TOKEN, 'content-type': 'application/json' },
        body: JSON.stringify({ contents: [{ parts: [{ text: 'hi' }] }] }),
      });
      expect(res.status).toBe(200);
      expect(await res.json()).toHaveProperty('candidates');
      const [call] = h.fake.calls;
      expect(call?.path).toBe(`/v1beta/models/${MODEL}:generateContent`);
      expect(KEYS).toContain(call?.headers['x-goog-api-key']);
      expect(call?.headers.authorization).toBeUndefined();
      expect(call?.keyInQuery).toBe(false);
      expect(call?.model).toBe(MODEL);
    });

    it('accepts the token as ?key= (native SDKs) and strips it before forwarding', async () => {
      const res = await fetch(`${h.url}/v1beta/models/${MODEL}:streamGenerateContent?alt=sse&key=${TOKEN}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ contents: [{ parts: [{ text: 'hi' }] }] }),
      });
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/text\/event-stream/);
      expect(await res.text()).toContain('data: {');
      const [call] = h.fake.calls;
      expect(call?.query).toBe('alt=sse');
      expect(call?.keyInQuery).toBe(false);
      expect(call?.stream).toBe(true);
    });

    it('forwards countTokens, embedContent and the model list', async () => {
      const headers = { 'x-goog-api-key': TOKEN, 'content-type': 'application/json' };
      const count = await fetch(`${h.url}/v1beta/models/${MODEL}:countTokens`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ contents: [{ parts: [{ text: 'hi there' }] }] }),
      });
      expect(await count.json()).toHaveProperty('totalTokens');
      const embed = await fetch(`${h.url}/v1beta/models/gemini-embedding-001:embedContent`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ content: { parts: [{ text: 'hi' }] } }),
      });
      expect(await embed.json()).toHaveProperty('embedding');
      const list = await fetch(`${h.url}/v1beta/models`, { headers });
      expect(await list.json()).toHaveProperty('models');
    });
  });

  it('ends a stream that fails midway with an SSE error event', async () => {
    // Prepare: whichever key serves next drops the connection after two chunks
    for (const key of KEYS) h.fake.failMidStream(key);

    // Act
    const res = await postChat(h, chatBody(MODEL, { stream: true }));
    const text = await res.text();

    // Assess
    expect(res.status).toBe(200);
    const events = text.split('\n\n').filter((e) => e.startsWith('data: '));
    expect(events.length).toBe(3);
    const last = JSON.parse(events[2]!.slice(6)) as { error: { code: string } };
    expect(last.error.code).toBe('upstream_stream_error');
    await stillServes();
  });

  it('cuts a body that is not SSE when it fails midway, rather than end it as if it were whole', async () => {
    // Prepare: native streaming without alt=sse is a JSON array, sent in pieces; it breaks after two
    for (const key of KEYS) h.fake.failMidStream(key);

    // Act
    const res = await fetch(`${h.url}/v1beta/models/${MODEL}:streamGenerateContent`, {
      method: 'POST',
      headers: { 'x-goog-api-key': TOKEN, 'content-type': 'application/json' },
      body: JSON.stringify({ contents: [{ parts: [{ text: 'hi' }] }] }),
    });

    // Assess: the status was sent, but reading the body fails: the client can tell it is cut
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).not.toMatch(/event-stream/);
    await expect(res.text()).rejects.toThrow();
    await stillServes();
  });

  it('aborts the upstream call when the client disconnects', async () => {
    // Prepare
    h.fake.options.streamChunkDelayMs = 200;

    // Act: read the first chunk, then go away
    const res = await postChat(h, chatBody(MODEL, { stream: true }));
    const reader = res.body!.getReader();
    await reader.read();
    await reader.cancel();

    // Assess
    await vi.waitFor(() => expect(h.fake.aborted).toBe(1), { timeout: 2000 });
    await stillServes();
  });

  it('aborts a pending upstream call when the client gives up before the first byte', async () => {
    // Prepare: every key hangs without sending headers (the first-byte timeout is 2 s)
    for (const key of KEYS) h.fake.hangNext(key);
    const controller = new AbortController();
    const started = Date.now();

    // Act
    setTimeout(() => controller.abort(), 100);
    await fetch(`${h.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: chatBody(),
      signal: controller.signal,
    }).catch(() => undefined);

    // Assess: the abandoned call is aborted upstream long before the first-byte timeout
    await vi.waitFor(() => expect(h.fake.aborted).toBeGreaterThanOrEqual(1), { timeout: 1000 });
    expect(Date.now() - started).toBeLessThan(1500);
  });

  it('ends a stream cut off by the request deadline with an SSE error event', async () => {
    // Prepare: a proxy whose deadline (300 ms) is shorter than the stream (5 chunks, 150 ms apart)
    const t = await startHarness({ config: { upstream: { request_timeout_ms: 300 } } });
    try {
      t.fake.options.streamChunkDelayMs = 150;

      // Act
      const res = await postChat(t, chatBody(MODEL, { stream: true }));
      const text = await res.text();

      // Assess
      expect(res.status).toBe(200);
      const events = text.split('\n\n').filter((e) => e.startsWith('data: '));
      const last = JSON.parse(events[events.length - 1]!.slice(6)) as { error: { code: string } };
      expect(last.error.code).toBe('deadline_exceeded');
      expect(t.logs.join('')).toContain('"streamError":"deadline"');
    } finally {
      await t.close();
    }
  });

  it('relays a large body to a slow reader without piling up listeners', async () => {
    // Prepare: an 8 MiB upstream answer and a client that reads in small sips
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.name);
    process.on('warning', onWarning);
    h.fake.respondNext('*', { status: 200, body: { data: 'x'.repeat(8 * 1024 * 1024) } });

    // Act
    const res = await postChat(h, chatBody());
    const reader = res.body!.getReader();
    let size = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      await new Promise((r) => setTimeout(r, 1));
    }
    process.off('warning', onWarning);

    // Assess
    expect(size).toBeGreaterThan(8 * 1024 * 1024);
    expect(warnings).not.toContain('MaxListenersExceededWarning');
  });
});
