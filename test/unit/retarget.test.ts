import { describe, expect, it } from 'vitest';
import type { UpstreamCall } from '../../lambda/core/forwarding/groups.js';
import { retarget, withBodyModel } from '../../lambda/core/forwarding/retarget.js';
import type { ProxyRequest } from '../../lambda/core/http.js';

const encoder = new TextEncoder();
// The BOM is kept, to compare every byte.
const decoder = new TextDecoder('utf-8', { ignoreBOM: true });
const swap = (body: string, model = 'gemini-2.5-flash') => {
  const out = withBodyModel(encoder.encode(body), model);
  return out === undefined ? undefined : decoder.decode(out);
};

function call(path: string, body: string, kind: 'openai' | 'native', query = ''): UpstreamCall {
  const request = { method: 'POST', path, query, headers: {} } as unknown as ProxyRequest;
  return {
    request,
    body: encoder.encode(body),
    target:
      kind === 'openai'
        ? { kind, rest: path.slice(4), query }
        : { kind, url: `http://127.0.0.1:9${path}`, query },
    generation: 'streamed',
  };
}

describe('Function: withBodyModel', () => {
  it('replaces only the top-level model, keeping every other byte', () => {
    // Prepare: nested "model" keys, a "model" string value elsewhere, numbers JSON.parse would round
    const body =
      '\uFEFF{ "messages": [{"role":"user","content":"model","model":"x"}],\n' +
      '  "seed": 12345678901234567890, "meta": {"model": "nested"},\t"model" : "models/gemini-2.5-pro",' +
      ' "stream": true, "n": 1.50 }';

    // Act
    const out = swap(body);

    // Assess
    expect(out).toBe(body.replace('"models/gemini-2.5-pro"', '"gemini-2.5-flash"'));
  });

  it('finds the key however it is escaped, and a value with escapes in it', () => {
    expect(swap('{"mo\\u0064el":"gemini-2.5-pro","x":"a\\"b"}')).toBe(
      '{"mo\\u0064el":"gemini-2.5-flash","x":"a\\"b"}',
    );
    expect(swap('{"a":"\\\\","model":"gemini\\u002d2.5-pro"}')).toBe(
      '{"a":"\\\\","model":"gemini-2.5-flash"}',
    );
  });

  it('finds nothing in a body without a top-level model', () => {
    expect(swap('{"contents":[{"model":"gemini-2.5-pro"}]}')).toBeUndefined();
    expect(swap('[{"model":"gemini-2.5-pro"}]')).toBeUndefined();
    expect(swap('{"modelx":"gemini-2.5-pro","models":"a"}')).toBeUndefined();
    expect(swap('')).toBeUndefined();
  });
});

describe('Function: retarget', () => {
  it('rewrites an OpenAI-compatible body and keeps its target', () => {
    // Prepare
    const original = call('/v1/chat/completions', '{"model":"gemini-2.5-pro","stream":true}', 'openai');

    // Act
    const next = retarget(original, 'gemini-2.5-flash');

    // Assess
    expect(decoder.decode(next!.body)).toBe('{"model":"gemini-2.5-flash","stream":true}');
    expect(next!.target).toEqual(original.target);
    expect(next!.generation).toBe('streamed');
  });

  it('rewrites a native path segment, however it was encoded, keeping the method and query', () => {
    // Prepare
    const original = call(
      '/v1beta/models/gemini%2D2.5-pro:streamGenerateContent',
      '{"contents":[]}',
      'native',
      'alt=sse',
    );

    // Act
    const next = retarget(original, 'gemini-2.5-flash');

    // Assess
    expect(next!.target).toEqual({
      kind: 'native',
      url: 'http://127.0.0.1:9/v1beta/models/gemini-2.5-flash:streamGenerateContent',
      query: 'alt=sse',
    });
    expect(next!.body).toBe(original.body);
  });

  it('rewrites a native body that names the model too', () => {
    const original = call(
      '/v1beta/models/gemini-2.5-pro:generateContent',
      '{"model":"models/gemini-2.5-pro"}',
      'native',
    );
    const next = retarget(original, 'gemini-2.5-flash');
    expect(decoder.decode(next!.body)).toBe('{"model":"gemini-2.5-flash"}');
    expect(next!.target).toMatchObject({
      url: 'http://127.0.0.1:9/v1beta/models/gemini-2.5-flash:generateContent',
    });
  });

  it('gives up on an OpenAI-compatible body without a model', () => {
    expect(
      retarget(call('/v1/chat/completions', '{"messages":[]}', 'openai'), 'gemini-2.5-flash'),
    ).toBeUndefined();
  });
});
