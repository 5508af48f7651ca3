import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
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
 * Many clients share one pool of keys: none may reach another's data through a key's Google project,
 * nor switch the project that is billed. Each test sends what a hostile client would and looks at what
 * reached the fake Gemini and what came back.
 */
describe('Integration: tenant isolation', () => {
  let h: Harness;
  const auth = { authorization: `Bearer ${TOKEN}` };
  const native = { 'x-goog-api-key': TOKEN, 'content-type': 'application/json' };
  const contents = JSON.stringify({ contents: [{ parts: [{ text: 'hi' }] }] });

  beforeAll(async () => {
    h = await startHarness();
  });
  beforeEach(() => {
    h.fake.reset();
    h.fake.options.responseHeaders = undefined;
  });
  afterAll(async () => {
    expect(leaks(h)).toEqual([]);
    await h.close();
  });

  describe('routes', () => {
    it.each([
      ['GET', '/v1beta/files', 'files'],
      ['GET', '/v1beta/files/abc123', 'files'],
      ['DELETE', '/v1beta/files/abc123', 'files'],
      ['GET', '/v1beta/generatedFiles', 'files'],
      ['GET', '/v1/files', 'files'],
      ['POST', '/v1/files', 'files'],
      ['GET', '/v1beta/cachedContents', 'cached_contents'],
      ['DELETE', '/v1beta/cachedContents/abc123', 'cached_contents'],
      ['GET', '/v1beta/batches', 'batches'],
      ['POST', '/v1beta/batches/abc123:cancel', 'batches'],
      ['POST', `/v1beta/models/${MODEL}:batchGenerateContent`, 'batches'],
      ['POST', '/v1beta/models/gemini-embedding-001:asyncBatchEmbedContent', 'batches'],
      ['GET', '/v1/batches', 'batches'],
      ['POST', '/v1/batches/batch_abc/cancel', 'batches'],
      ['GET', '/v1beta/tunedModels', 'tuned_models'],
      ['POST', '/v1beta/tunedModels/my-model:generateContent', 'tuned_models'],
      ['GET', '/v1beta/operations', 'operations'],
      ['GET', '/v1beta/models/veo-3.0-generate-001/operations/abc123', 'operations'],
      ['POST', '/v1beta/models/veo-3.0-generate-001:predictLongRunning', 'operations'],
      ['GET', '/v1beta/corpora', 'corpora'],
      ['GET', '/v1beta/fileSearchStores', 'file_search_stores'],
    ])(
      'refuses %s %s (%s) with 403 after the token check, without calling Gemini',
      async (method, path, family) => {
        // Prepare
        const body = method === 'POST' ? '{}' : undefined;
        const headers = { 'content-type': 'application/json' };

        // Act
        const anonymous = await fetch(`${h.url}${path}`, { method, headers, body });
        const res = await fetch(`${h.url}${path}`, { method, headers: { ...headers, ...auth }, body });

        // Assess: a caller without a token learns nothing but 401; one with a token is told which family
        expect(anonymous.status).toBe(401);
        expect(res.status).toBe(403);
        expect(await res.json()).toEqual({
          error: {
            message: expect.stringContaining(`"${family}"`),
            type: 'invalid_request_error',
            param: null,
            code: 'route_not_allowed',
          },
        });
        expect(res.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
        expect(h.fake.calls).toHaveLength(0);
      },
    );

    it.each([
      ['GET', '/v1/chat/completions'],
      ['GET', '/v1/chat/completions/chatcmpl-abc'],
      ['POST', '/v1/responses'],
      ['GET', '/v1/responses/resp_abc'],
      ['DELETE', '/v1/models/gemini-2.5-flash'],
      ['POST', '/v1/models'],
      ['POST', '/v1/audio/speech'],
      ['POST', '/v1/fine_tuning/jobs'],
      ['GET', '/v1beta/models/gemini-2.5-flash/extra'],
      ['POST', '/v1beta/models/gemini-2.5-flash:generateAnswer'],
      ['DELETE', '/v1beta/models/gemini-2.5-flash'],
      ['GET', '/v1beta/models/gemini-2.5-flash:generateContent'],
      ['GET', '/v1beta/permissions'],
      ['GET', '/v1beta/%66iles'],
    ])('answers %s %s, a route it does not know, with 404 without calling Gemini', async (method, path) => {
      // Act
      const res = await fetch(`${h.url}${path}`, {
        method,
        headers: { ...auth, 'content-type': 'application/json' },
        body: method === 'POST' ? '{}' : undefined,
      });

      // Assess
      expect(res.status).toBe(404);
      expect(await res.json()).toMatchObject({ error: { type: 'invalid_request_error', code: 'not_found' } });
      expect(h.fake.calls).toHaveLength(0);
    });

    it('forwards a family the operator opted in, and still refuses the others', async () => {
      // Prepare
      const t = await startHarness({ config: { server: { allow_route_families: ['files', 'batches'] } } });
      try {
        t.fake.respondNext('*', { status: 200, body: { files: [] } });
        t.fake.respondNext('*', { status: 200, body: { name: 'batches/abc123' } });
        t.fake.respondNext('*', { status: 200, body: { object: 'list', data: [] } });

        // Act
        const files = await fetch(`${t.url}/v1beta/files?pageSize=10&userProject=other`, { headers: native });
        const cancel = await fetch(`${t.url}/v1beta/batches/abc123:cancel`, {
          method: 'POST',
          headers: native,
        });
        const openAiBatches = await fetch(`${t.url}/v1/batches`, { headers: auth });
        const cached = await fetch(`${t.url}/v1beta/cachedContents`, { headers: native });

        // Assess
        expect(files.status).toBe(200);
        expect(await files.json()).toEqual({ files: [] });
        expect(cancel.status).toBe(200);
        expect(openAiBatches.status).toBe(200);
        expect(cached.status).toBe(403);
        expect(t.fake.calls.map((c) => [c.method, c.path, c.query])).toEqual([
          ['GET', '/v1beta/files', 'pageSize=10'],
          ['POST', '/v1beta/batches/abc123:cancel', ''],
          ['GET', '/v1beta/openai/batches', ''],
        ]);
        expect(KEYS).toContain(t.fake.calls[0]?.headers['x-goog-api-key']);
      } finally {
        await t.close();
      }
    });
  });

  describe('request headers', () => {
    /** What a client may send that must not reach Gemini under a pooled key. */
    const hostile = {
      'x-goog-user-project': 'someone-elses-project',
      'x-http-method-override': 'DELETE',
      'x-goog-fieldmask': 'candidates',
      'x-goog-api-client': 'genai-js/1.0.0',
      'x-goog-request-params': 'name=files/abc',
      'x-server-timeout': '1',
      'api-key': TOKEN,
      origin: 'https://attacker.example',
      referer: 'https://attacker.example/page',
      'user-agent': 'client-sdk/1.0',
      'x-custom-header': 'dropped',
    };

    it('sends Gemini only the headers it needs on the OpenAI-compatible route', async () => {
      // Act
      const res = await postChat(h, chatBody(), { ...hostile, accept: 'application/json' });

      // Assess
      expect(res.status).toBe(200);
      const [call] = h.fake.calls;
      for (const name of Object.keys(hostile)) expect(call?.headers[name], name).toBeUndefined();
      expect(call?.headers['content-type']).toBe('application/json');
      expect(call?.headers.accept).toBe('application/json');
      expect(call?.headers.authorization).toMatch(/^Bearer fake-key-/);
      expect(Object.keys(call?.headers ?? {}).sort()).toEqual([
        'accept',
        'authorization',
        'connection',
        'content-length',
        'content-type',
        'host',
      ]);
      expect(JSON.stringify(call?.headers)).not.toContain(TOKEN);
    });

    it('sends Gemini only the headers it needs on the native route', async () => {
      // Act
      const res = await fetch(`${h.url}/v1beta/models/${MODEL}:generateContent`, {
        method: 'POST',
        headers: { ...native, ...hostile },
        body: contents,
      });

      // Assess
      expect(res.status).toBe(200);
      const [call] = h.fake.calls;
      for (const name of Object.keys(hostile)) expect(call?.headers[name], name).toBeUndefined();
      expect(KEYS).toContain(call?.headers['x-goog-api-key']);
      expect(call?.headers['content-type']).toBe('application/json');
    });
  });

  describe('query string', () => {
    it('forwards only alt, pageSize and pageToken, however a name is spelt', async () => {
      // Prepare: Google's system parameters, plain and percent-encoded
      const hostile =
        'userProject=p&quotaUser=u&fields=models.name&%24fields=x&$.xgafv=2&prettyPrint=false' +
        '&callback=cb&access_token=t&user%50roject=p&uploadType=media&%24alt=json';

      // Act
      const list = await fetch(`${h.url}/v1beta/models?pageSize=5&${hostile}&pageToken=abc&key=${TOKEN}`);
      const stream = await fetch(`${h.url}/v1beta/models/${MODEL}:streamGenerateContent?${hostile}&alt=sse`, {
        method: 'POST',
        headers: native,
        body: contents,
      });
      const chat = await fetch(`${h.url}/v1/chat/completions?${hostile}`, {
        method: 'POST',
        headers: { ...auth, 'content-type': 'application/json' },
        body: chatBody(),
      });

      // Assess
      expect([list.status, stream.status, chat.status]).toEqual([200, 200, 200]);
      await stream.text();
      expect(h.fake.calls.map((c) => c.query)).toEqual(['pageSize=5&pageToken=abc', 'alt=sse', '']);
    });
  });

  describe('response headers', () => {
    const cors = {
      'access-control-allow-origin': 'https://attacker.example',
      'access-control-allow-credentials': 'true',
      'access-control-expose-headers': 'x-goog-upload-url',
      'timing-allow-origin': '*',
    };

    /** Asserts that no CORS header reached the client and the proxy's own headers did. */
    function expectNoCors(res: Response): void {
      for (const name of Object.keys(cors)) expect(res.headers.get(name), name).toBeNull();
      expect(res.headers.get('x-request-id')).not.toBeNull();
    }

    it("never relays Gemini's CORS headers, on answers, streams and errors", async () => {
      // Prepare: Gemini reflects the Origin it is sent, with credentials
      h.fake.options.responseHeaders = cors;
      const origin = { origin: 'https://attacker.example' };

      // Act
      const whole = await postChat(h, chatBody(), origin);
      const streamed = await postChat(h, chatBody(MODEL, { stream: true }), origin);
      await streamed.text();
      h.fake.respondNext('*', {
        status: 400,
        body: { error: { code: 400, message: 'Invalid value.', status: 'INVALID_ARGUMENT' } },
        headers: cors,
      });
      const refused = await postChat(h, chatBody(), origin);
      const list = await fetch(`${h.url}/v1beta/models`, { headers: { ...native, ...origin } });

      // Assess
      expect([whole.status, streamed.status, refused.status, list.status]).toEqual([200, 200, 400, 200]);
      for (const res of [whole, streamed, refused, list]) expectNoCors(res);
      expect(h.fake.calls).toHaveLength(4);
    });

    it('answers a CORS preflight with 404: the proxy offers no CORS of its own', async () => {
      // Act
      const res = await fetch(`${h.url}/v1/chat/completions`, {
        method: 'OPTIONS',
        headers: { origin: 'https://attacker.example', 'access-control-request-method': 'POST' },
      });

      // Assess
      expect(res.status).toBe(404);
      expectNoCors(res);
      expect(h.fake.calls).toHaveLength(0);
    });
  });
});
