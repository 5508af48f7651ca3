import { describe, expect, it } from 'vitest';
import { Scrubber } from '../../lambda/core/credentials.js';
import type { Headers } from '../../lambda/core/http.js';
import { MAX_RETRY_AFTER_S, retryAfterSeconds } from '../../lambda/core/refusals.js';
import { type ErrorDialect, saneRetryAfter, upstreamErrorAnswer } from '../../lambda/core/upstream-errors.js';

const KEY = 'AIzaSyFakeFakeFakeFakeFakeFakeFake0000';
const scrubber = new Scrubber([KEY]);
const now = Date.parse('2026-07-04T15:30:00Z');

async function* none(): AsyncGenerator<Uint8Array> {}

function answer(dialect: ErrorDialect, status: number, text: string | undefined, headers: Headers = {}) {
  const res = upstreamErrorAnswer(dialect, { status, headers, body: none() }, text, scrubber, now);
  return { status: res.status, headers: res.headers, body: JSON.parse(res.body as string) as unknown };
}

describe('Function: upstreamErrorAnswer', () => {
  const notJson: Array<[string, number, string | undefined, string]> = [
    ['text', 503, 'upstream connect error or disconnect/reset before headers', 'a body that is not JSON'],
    ['HTML', 500, `<html>${KEY}</html>`, 'a body that is not JSON'],
    ['empty', 502, '', 'an empty body'],
    ['blank', 502, ' \r\n', 'an empty body'],
    ['oversized', 500, undefined, 'an oversized error body'],
    ['JSON that is no error', 503, '{"choices":[]}', 'JSON that is not an error'],
    ['a JSON string', 503, '"nope"', 'JSON that is not an error'],
  ];

  it.each(notJson)('answers %s in OpenAI’s shape on /v1/*, echoing nothing', (_name, status, text, what) => {
    const res = answer('openai', status, text, { 'content-type': 'text/html' });
    expect(res.status).toBe(status);
    expect(res.headers['content-type']).toBe('application/json');
    expect(res.body).toEqual({
      error: {
        message: expect.stringMatching(new RegExp(`^Gemini answered ${status} with ${what}`)),
        type: 'server_error',
        param: null,
        code: 'upstream_error',
      },
    });
    expect(JSON.stringify(res.body)).not.toContain(KEY);
  });

  it.each(notJson)('answers %s in Gemini’s shape on /v1beta/*', (_name, status, text) => {
    const res = answer('native', status, text);
    expect(res.body).toEqual({
      error: {
        code: status,
        message: expect.stringContaining(`Gemini answered ${status}`),
        status: status === 500 ? 'INTERNAL' : 'UNAVAILABLE',
      },
    });
  });

  it('names a plain media type, and nothing else of the upstream’s', () => {
    const text = answer('openai', 503, 'x', { 'content-type': 'text/plain; charset=utf-8' });
    const odd = answer('openai', 503, 'x', { 'content-type': `text/${KEY}` });
    expect(JSON.stringify(text.body)).toContain('not JSON (text/plain).');
    expect(JSON.stringify(odd.body)).toContain('not JSON.');
  });

  it('gives a Gemini error OpenAI’s type and param, keeping message, code, status and details', () => {
    const details = [
      { '@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason: 'X', metadata: { k: KEY } },
    ];
    const gemini = {
      error: { code: 403, message: `Consumer 'api_key:${KEY}' denied`, status: 'PERMISSION_DENIED', details },
    };
    for (const text of [JSON.stringify(gemini), JSON.stringify([gemini])]) {
      expect(answer('openai', 403, text).body).toEqual({
        error: {
          message: "Consumer '[redacted]' denied",
          type: 'invalid_request_error',
          param: null,
          code: 403,
          status: 'PERMISSION_DENIED',
          details: [{ ...details[0], metadata: { k: '[redacted]' } }],
        },
      });
    }
  });

  it('keeps an error already in OpenAI’s shape as it is', () => {
    const openai = {
      error: { message: 'm', type: 'invalid_request_error', param: 'model', code: 'model_not_found' },
    };
    expect(answer('openai', 404, JSON.stringify(openai)).body).toEqual(openai);
  });

  it('maps the type by status: rate limits and server errors', () => {
    const body = (status: number) => JSON.stringify({ error: { code: status, message: 'm' } });
    expect(answer('openai', 429, body(429)).body).toMatchObject({ error: { type: 'rate_limit_error' } });
    expect(answer('openai', 500, body(500)).body).toMatchObject({ error: { type: 'server_error' } });
    expect(answer('openai', 400, '{"error":{"code":400}}').body).toMatchObject({
      error: { message: 'Gemini answered 400.', code: 400 },
    });
  });

  it('keeps a native Gemini error in its own shape (array-wrapped too), scrubbed', () => {
    const gemini = { error: { code: 400, message: `bad ${KEY}`, status: 'INVALID_ARGUMENT' } };
    expect(answer('native', 400, JSON.stringify(gemini)).body).toEqual({
      error: { code: 400, message: 'bad [redacted]', status: 'INVALID_ARGUMENT' },
    });
    expect(answer('native', 400, JSON.stringify([gemini])).body).toEqual([
      { error: { code: 400, message: 'bad [redacted]', status: 'INVALID_ARGUMENT' } },
    ]);
  });

  it('scrubs a key written with JSON escapes, which only parsing reveals', () => {
    const escaped = `{"error":{"code":400,"message":"\\u0041${KEY.slice(1)}"}}`;
    expect(JSON.stringify(answer('native', 400, escaped).body)).not.toContain(KEY);
    expect(JSON.stringify(answer('openai', 400, escaped).body)).not.toContain(KEY);
  });

  it('survives JSON nested deeper than any error', () => {
    const deep = `${'['.repeat(100_000)}${']'.repeat(100_000)}`;
    expect(answer('openai', 500, deep).body).toMatchObject({ error: { code: 'upstream_error' } });
    const nested = JSON.stringify({
      error: { code: 400, message: 'm', details: JSON.parse(`${'['.repeat(50)}1${']'.repeat(50)}`) },
    });
    expect(answer('native', 400, nested).status).toBe(400);
  });

  it('sets its own framing headers and passes others scrubbed', () => {
    const res = answer('openai', 503, 'x', {
      'content-type': 'text/plain',
      'content-length': '1',
      'content-encoding': 'gzip',
      'x-goog-note': `for ${KEY}`,
    });
    expect(res.headers).toEqual({ 'content-type': 'application/json', 'x-goog-note': 'for [redacted]' });
  });

  it('passes a Retry-After only as a sane number of seconds', () => {
    const retryAfter = (value: string) =>
      answer('openai', 503, '', { 'retry-after': value }).headers['retry-after'];
    expect(retryAfter('7')).toBe('7');
    expect(retryAfter('0')).toBe('1');
    expect(retryAfter('1e+23')).toBe(String(MAX_RETRY_AFTER_S));
    expect(retryAfter('soon')).toBeUndefined();
    expect(retryAfter('-3')).toBeUndefined();
    expect(retryAfter(new Date(now + 30_000).toUTCString())).toBe('30');
  });
});

describe('Function: saneRetryAfter', () => {
  it.each([
    [undefined, undefined],
    ['', undefined],
    ['12', 12],
    ['1.5', 2],
    [`1${'0'.repeat(400)}`, MAX_RETRY_AFTER_S],
    ['Sat, 04 Jul 2026 15:29:00 GMT', 1],
    ['Sun, 05 Jul 2026 15:30:00 GMT', 86_400],
    ['Fri, 01 Jan 2100 00:00:00 GMT', MAX_RETRY_AFTER_S],
    ['2026-07-04', undefined],
  ])('%s → %s', (value, expected) => {
    expect(saneRetryAfter(value, now)).toBe(expected);
  });
});

describe('Function: retryAfterSeconds', () => {
  it.each([
    [0, 1],
    [-5000, 1],
    [1, 1],
    [1500, 2],
    [60_000, 60],
    [1e26, MAX_RETRY_AFTER_S],
    [Number.POSITIVE_INFINITY, MAX_RETRY_AFTER_S],
    [Number.NEGATIVE_INFINITY, 1],
    [Number.NaN, 1],
  ])('%s ms → %s s', (waitMs, expected) => {
    expect(retryAfterSeconds(waitMs)).toBe(expected);
  });

  it('is at most a Pacific day', () => {
    expect(MAX_RETRY_AFTER_S).toBe(90_000);
  });
});
