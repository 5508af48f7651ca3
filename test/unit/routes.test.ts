import { describe, expect, it } from 'vitest';
import { matchRoute, normalizeModel, stripKeyParam } from '../../lambda/core/routes.js';

describe('Function: matchRoute', () => {
  it.each([
    ['GET', '/health', { kind: 'health' }],
    ['GET', '/health/detailed', { kind: 'health_detailed' }],
    ['POST', '/v1/chat/completions', { kind: 'openai', rest: 'chat/completions' }],
    ['GET', '/v1/models', { kind: 'openai', rest: 'models' }],
    ['POST', '/v1/images/generations', { kind: 'openai', rest: 'images/generations' }],
    [
      'POST',
      '/v1beta/models/gemini-2.5-flash:generateContent',
      { kind: 'native', model: 'gemini-2.5-flash', method: 'generateContent' },
    ],
    [
      'POST',
      '/v1beta/models/gemini-2.5-flash:streamGenerateContent',
      { kind: 'native', model: 'gemini-2.5-flash', method: 'streamGenerateContent' },
    ],
    ['GET', '/v1beta/models', { kind: 'native', model: '' }],
    ['GET', '/v1beta/models/gemini-2.5-pro', { kind: 'native', model: 'gemini-2.5-pro' }],
    ['GET', '/', { kind: 'not_found' }],
    ['GET', '/v1', { kind: 'not_found' }],
    ['POST', '/health', { kind: 'not_found' }],
    ['GET', '/v1/../admin', { kind: 'not_found' }],
    ['GET', '/v1/%2e%2e/admin', { kind: 'not_found' }],
    ['GET', '/v1//x', { kind: 'not_found' }],
    ['GET', '/v1/..\\..\\secret', { kind: 'not_found' }],
    ['GET', '/v1/a%5c..%5csecret', { kind: 'not_found' }],
    ['POST', '/v1beta/models/%E0%A4%A:generateContent', { kind: 'not_found' }],
    [
      'POST',
      '/v1beta/models/models%2Fgemini-2.5-flash:generateContent',
      { kind: 'native', model: 'models/gemini-2.5-flash', method: 'generateContent' },
    ],
    // Decoded: an encoded `:` stays in the model (whose name is then refused), never makes a method.
    [
      'POST',
      '/v1beta/models/gemini-2.5-flash%3AgenerateContent',
      { kind: 'native', model: 'gemini-2.5-flash:generateContent', method: undefined },
    ],
    [
      'POST',
      '/v1beta/models/gemini-2.5-flash:generateContent:x/y',
      { kind: 'native', model: 'gemini-2.5-flash', method: 'generateContent:x/y' },
    ],
  ])('%s %s', (method, path, expected) => {
    expect(matchRoute(method, path)).toEqual(expected);
  });
});

describe('Function: stripKeyParam', () => {
  it('takes the key out and keeps the rest', () => {
    expect(stripKeyParam('alt=sse&key=tok')).toEqual({ query: 'alt=sse', key: 'tok' });
    expect(stripKeyParam('key=tok')).toEqual({ query: '', key: 'tok' });
    expect(stripKeyParam('alt=sse')).toEqual({ query: 'alt=sse', key: undefined });
    expect(stripKeyParam('monkey=1')).toEqual({ query: 'monkey=1', key: undefined });
  });

  it('finds a percent-encoded key name and leaves the other parameters byte for byte', () => {
    expect(stripKeyParam('%6Bey=tok&$fields=a%20b')).toEqual({ query: '$fields=a%20b', key: 'tok' });
    expect(stripKeyParam('alt=sse&k%65y=tok%2B1')).toEqual({ query: 'alt=sse', key: 'tok+1' });
    expect(stripKeyParam('bad=%E0%A4%A&x=1')).toEqual({ query: 'bad=%E0%A4%A&x=1', key: undefined });
  });
});

describe('Function: normalizeModel', () => {
  it('drops the models/ prefix', () => {
    expect(normalizeModel('models/gemini-2.5-flash')).toBe('gemini-2.5-flash');
    expect(normalizeModel('gemini-2.5-flash')).toBe('gemini-2.5-flash');
  });
});
