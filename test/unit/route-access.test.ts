import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../lambda/core/config/parse.js';
import { clientResponseHeaders, upstreamRequestHeaders } from '../../lambda/core/headers.js';
import { forwardedQuery, routeAccess, routeNotAllowed } from '../../lambda/core/route-access.js';

describe('Function: routeAccess', () => {
  it.each([
    ['POST', '/v1/chat/completions'],
    ['POST', '/v1/completions'],
    ['POST', '/v1/embeddings'],
    ['POST', '/v1/images/generations'],
    ['GET', '/v1/models'],
    ['GET', '/v1/models/gemini-2.5-flash'],
    ['GET', '/v1/models/models/gemini-2.5-flash'],
    ['GET', '/v1beta/models'],
    ['GET', '/v1beta/models/gemini-2.5-flash'],
    ['POST', '/v1beta/models/gemini-2.5-flash:generateContent'],
    ['POST', '/v1beta/models/gemini-2.5-flash:streamGenerateContent'],
    ['POST', '/v1beta/models/gemini-2.5-flash:countTokens'],
    ['POST', '/v1beta/models/gemini-embedding-001:embedContent'],
    ['POST', '/v1beta/models/gemini-embedding-001:batchEmbedContents'],
  ])('lets every client use %s %s', (method, path) => {
    expect(routeAccess(method, path)).toEqual({ kind: 'open' });
  });

  it.each([
    ['GET', '/v1beta/files', 'files'],
    ['DELETE', '/v1beta/files/abc', 'files'],
    ['GET', '/v1beta/files/abc:download', 'files'],
    ['GET', '/v1beta/generatedFiles', 'files'],
    ['POST', '/v1/files', 'files'],
    ['GET', '/v1/files/file-abc/content', 'files'],
    ['PATCH', '/v1beta/cachedContents/abc', 'cached_contents'],
    ['GET', '/v1beta/batches/abc', 'batches'],
    ['POST', '/v1beta/batches/abc:cancel', 'batches'],
    ['POST', '/v1beta/models/gemini-2.5-flash:batchGenerateContent', 'batches'],
    ['POST', '/v1beta/models/gemini-embedding-001:asyncBatchEmbedContent', 'batches'],
    ['POST', '/v1/batches', 'batches'],
    ['GET', '/v1beta/tunedModels/x', 'tuned_models'],
    ['GET', '/v1beta/operations/abc', 'operations'],
    ['GET', '/v1beta/models/veo-3.0-generate-001/operations/abc', 'operations'],
    ['POST', '/v1beta/models/veo-3.0-generate-001:predictLongRunning', 'operations'],
    ['POST', '/v1beta/corpora/c/documents', 'corpora'],
    ['DELETE', '/v1beta/fileSearchStores/s', 'file_search_stores'],
  ])('puts %s %s in the %s family', (method, path, family) => {
    expect(routeAccess(method, path)).toEqual({ kind: 'family', family });
  });

  it.each([
    ['GET', '/v1/chat/completions'],
    ['POST', '/v1/responses'],
    ['DELETE', '/v1/models/gemini-2.5-flash'],
    ['GET', '/v1/models/a/b'],
    ['POST', '/v1/assistants'],
    ['POST', '/v1beta/models'],
    ['GET', '/v1beta/models/gemini-2.5-flash/extra'],
    ['DELETE', '/v1beta/models/gemini-2.5-flash'],
    ['GET', '/v1beta/models/gemini-2.5-flash:generateContent'],
    ['POST', '/v1beta/models/gemini-2.5-flash:GenerateContent'],
    ['POST', '/v1beta/models/gemini-2.5-flash:generateContent/x'],
    ['POST', '/v1beta/models/imagen-4.0-generate-001:predict'],
    ['GET', '/v1beta/Files'],
    ['GET', '/v1beta/%66iles'],
    ['GET', '/v1beta/permissions'],
    ['GET', '/upload/v1beta/files'],
  ])('does not know %s %s', (method, path) => {
    expect(routeAccess(method, path)).toEqual({ kind: 'unknown' });
  });
});

describe('Function: routeNotAllowed', () => {
  it('answers 403 in OpenAI shape, naming the family and the setting', () => {
    // Act
    const res = routeNotAllowed('cached_contents');

    // Assess
    expect(res.status).toBe(403);
    const body = JSON.parse(res.body as string) as { error: Record<string, unknown> };
    expect(body.error).toMatchObject({
      type: 'invalid_request_error',
      param: null,
      code: 'route_not_allowed',
    });
    expect(body.error.message).toContain('"cached_contents"');
    expect(body.error.message).toContain('server.allow_route_families');
  });
});

describe('Function: forwardedQuery', () => {
  it('keeps alt, pageSize and pageToken byte for byte and drops the rest', () => {
    expect(forwardedQuery('alt=sse')).toBe('alt=sse');
    expect(forwardedQuery('pageSize=5&userProject=p&pageToken=a%2Bb')).toBe('pageSize=5&pageToken=a%2Bb');
    expect(forwardedQuery('quotaUser=u&fields=x&%24fields=y&$.xgafv=2&prettyPrint=false&key=t')).toBe('');
    expect(forwardedQuery('')).toBe('');
  });

  it('compares names decoded, so no spelling gets a parameter past it', () => {
    expect(forwardedQuery('user%50roject=p&%61lt=sse&bad=%E0%A4%A&%E0=1')).toBe('%61lt=sse');
    expect(forwardedQuery('Alt=sse&alt%00=sse&%24alt=json')).toBe('');
  });

  it('adds the family routes’ own parameters only for those routes', () => {
    expect(forwardedQuery('updateMask=ttl&filter=x&limit=2&after=b&userProject=p')).toBe('');
    expect(forwardedQuery('updateMask=ttl&filter=x&limit=2&after=b&userProject=p', true)).toBe(
      'updateMask=ttl&filter=x&limit=2&after=b',
    );
  });
});

describe('Function: upstreamRequestHeaders', () => {
  it('keeps only content-type and accept, unless Connection names them', () => {
    // Act
    const kept = upstreamRequestHeaders({
      'content-type': 'application/json',
      accept: 'text/event-stream',
      'x-goog-user-project': 'p',
      'x-http-method-override': 'DELETE',
      'user-agent': 'sdk',
      'content-encoding': 'gzip',
    });
    const named = upstreamRequestHeaders({ connection: 'accept', accept: 'x', 'content-type': 'y' });

    // Assess
    expect(kept).toEqual({ 'content-type': 'application/json', accept: 'text/event-stream' });
    expect(named).toEqual({ 'content-type': 'y' });
  });
});

describe('Function: clientResponseHeaders', () => {
  it("drops Google's CORS headers, keeping the rest", () => {
    expect(
      clientResponseHeaders({
        'content-type': 'application/json',
        'Access-Control-Allow-Origin': 'https://a.example',
        'access-control-allow-credentials': 'true',
        'access-control-expose-headers': 'x',
        'timing-allow-origin': '*',
        vary: 'Origin',
        'server-timing': 'gfet4t7; dur=10',
      }),
    ).toEqual({ 'content-type': 'application/json', vary: 'Origin', 'server-timing': 'gfet4t7; dur=10' });
  });
});

describe('Config: server.allow_route_families', () => {
  const base = { client_tokens: ['t'], groups: [{ name: 'g', api_keys: ['k'] }] };

  it('defaults to none and takes known families', () => {
    expect(parseConfig(base).server.allow_route_families).toEqual([]);
    expect(
      parseConfig({ ...base, server: { allow_route_families: ['files', 'tuned_models'] } }).server
        .allow_route_families,
    ).toEqual(['files', 'tuned_models']);
  });

  it('refuses an unknown family, naming the field and the families it knows', () => {
    // Act
    let error: unknown;
    try {
      parseConfig({ ...base, server: { allow_route_families: ['files', 'cachedContents'] } });
    } catch (err) {
      error = err;
    }

    // Assess
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toContain(
      'server.allow_route_families[1]: expected one of files, cached_contents, batches, tuned_models, operations, corpora, file_search_stores',
    );
    expect(() => parseConfig({ ...base, server: { allow_route_families: 'files' } })).toThrow(
      'server.allow_route_families: expected a list',
    );
  });
});
