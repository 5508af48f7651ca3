import { describe, expect, it } from 'vitest';
import { BoundedMap } from '../../lambda/core/bounded-map.js';
import { parseConfig } from '../../lambda/core/config/parse.js';
import { canonicalModel } from '../../lambda/core/models.js';
import { type ModelTarget, requestModel } from '../../lambda/core/request-model.js';

const chat: ModelTarget = { kind: 'openai', rest: 'chat/completions' };
const native = (model: string, method?: string): ModelTarget => ({ kind: 'native', model, method });
const body = (text: string) => Buffer.from(text, 'utf8');
const JSON_TYPE = 'application/json';

describe('Function: canonicalModel', () => {
  it.each([
    ['gemini-2.5-flash', 'gemini-2.5-flash'],
    ['models/gemini-2.5-flash', 'gemini-2.5-flash'],
    ['text-embedding-004', 'text-embedding-004'],
    ['constructor', 'constructor'],
  ])('takes %s as %s', (raw, model) => {
    expect(canonicalModel(raw)).toEqual({ ok: true, model });
  });

  it.each([
    ['Gemini-2.5-Flash', 'use gemini-2.5-flash'],
    ['MODELS/gemini-2.5-flash', 'use gemini-2.5-flash'],
    ['gemini-2.5-flash@001', 'use gemini-2.5-flash'],
    ['gemini-2.5-flash:generateContent', 'use gemini-2.5-flash'],
    [' gemini-2.5-flash ', 'use gemini-2.5-flash'],
  ])('refuses %s, naming the canonical spelling', (raw, hint) => {
    const check = canonicalModel(raw);
    expect(check.ok).toBe(false);
    expect(!check.ok && check.message).toContain(hint);
  });

  it.each(['', 'models/', '-x', '.x', 'a_b', 'a/b', 'é', 'a'.repeat(65), '../../etc', '__proto__', 'a b'])(
    'refuses %j without echoing it',
    (raw) => {
      const check = canonicalModel(raw);
      expect(check.ok).toBe(false);
      if (raw.length > 7) expect(!check.ok && check.message).not.toContain(raw);
    },
  );
});

describe('Function: requestModel', () => {
  it('reads the model and stream of an OpenAI-compatible body, whatever its content type', () => {
    const text = '{"model":"models/gemini-2.5-flash","stream":true,"messages":[]}';
    for (const type of [JSON_TYPE, 'text/plain', 'application/x-www-form-urlencoded', undefined]) {
      expect(requestModel(chat, type, body(text))).toEqual({
        ok: true,
        model: 'gemini-2.5-flash',
        generation: 'streamed',
      });
    }
  });

  it('refuses what Gemini might read differently', () => {
    const cases: Array<[string, number, string]> = [
      ['{"model":"Gemini-2.5-Flash"}', 400, 'invalid_model'],
      ['{"model":"gemini-2.5-flash","model":"gemini-2.5-pro"}', 400, 'invalid_json'],
      ['{"model":"gemini-2.5-flash","mo\\u0064el":"gemini-2.5-pro"}', 400, 'invalid_json'],
      ['{"model":"gemini-2.5-flash","stream":false,"stream":true}', 400, 'invalid_json'],
      ['{"model":7}', 400, 'invalid_model'],
      ['{"model":"gemini-2.5-flash",}', 400, 'invalid_json'],
      ['{"messages":[]}', 400, 'invalid_model'],
      [`{"model":"gemini-2.5-flash","x":${'['.repeat(100)}${']'.repeat(100)}}`, 400, 'invalid_json'],
    ];
    for (const [text, status, code] of cases) {
      expect(requestModel(chat, 'text/plain', body(text)), text).toMatchObject({ ok: false, status, code });
    }
  });

  it('refuses a broken JSON body, and one in another encoding, when it was meant as JSON', () => {
    expect(requestModel(chat, JSON_TYPE, body('model=gemini-2.5-flash'))).toMatchObject({
      ok: false,
      status: 400,
    });
    const utf16 = Buffer.from('{"model":"gemini-2.5-flash"}', 'utf16le');
    expect(requestModel(chat, 'text/plain', utf16)).toMatchObject({ ok: false, status: 400 });
    expect(requestModel(chat, 'application/json; charset=utf-16', utf16)).toMatchObject({
      ok: false,
      status: 400,
    });
  });

  it('lets calls that name no model through without one', () => {
    expect(requestModel({ kind: 'openai', rest: 'models' }, undefined, new Uint8Array(0))).toEqual({
      ok: true,
      model: '',
      generation: undefined,
    });
    const upload = body(
      '--boundary\r\nContent-Disposition: form-data; name="file"\r\n\r\n{}\r\n--boundary--',
    );
    expect(
      requestModel({ kind: 'openai', rest: 'files' }, 'multipart/form-data; boundary=boundary', upload),
    ).toEqual({
      ok: true,
      model: '',
      generation: undefined,
    });
  });

  it('takes a native model only as one canonical path segment', () => {
    const empty = new Uint8Array(0);
    expect(requestModel(native('gemini-2.5-flash', 'streamGenerateContent'), undefined, empty)).toEqual({
      ok: true,
      model: 'gemini-2.5-flash',
      generation: 'streamed',
    });
    expect(requestModel(native('gemini-2.5-pro'), undefined, empty)).toMatchObject({
      ok: true,
      model: 'gemini-2.5-pro',
    });
    for (const model of ['Gemini-2.5-Flash', 'gemini-2.5-flash:generateContent', 'models/gemini-2.5-flash'])
      expect(requestModel(native(model, 'generateContent'), undefined, empty), model).toMatchObject({
        ok: false,
        status: 400,
        code: 'invalid_model',
      });
  });

  it('refuses a native body that names another model than the path', () => {
    const target = native('gemini-2.5-pro', 'generateContent');
    expect(
      requestModel(target, JSON_TYPE, body('{"model":"models/gemini-2.5-flash","contents":[]}')),
    ).toMatchObject({
      ok: false,
      code: 'invalid_model',
    });
    expect(
      requestModel(target, JSON_TYPE, body('{"model":"models/gemini-2.5-pro","contents":[]}')),
    ).toMatchObject({
      ok: true,
      model: 'gemini-2.5-pro',
      generation: 'whole',
    });
  });
});

describe('Class: BoundedMap', () => {
  it('drops the entry set longest ago once full, and counts a new set as recent', () => {
    const map = new BoundedMap<string, number>(3);
    map.set('a', 1).set('b', 2).set('c', 3);
    map.set('a', 10); // a is now the newest
    map.set('d', 4); // drops b
    expect([...map.keys()]).toEqual(['c', 'a', 'd']);
    expect(map.get('a')).toBe(10);
    expect(map.size).toBe(3);
  });
});

describe('Function: parseConfig (model names)', () => {
  const base = { client_tokens: ['t'] };

  it('takes canonical group models and reads the model list hourly by default', () => {
    const config = parseConfig({
      ...base,
      groups: [{ name: 'g', api_keys: ['k'], models: ['gemini-2.5-flash', 'models/gemini-2.5-pro'] }],
    });
    expect(config.upstream.model_list_ms).toBe(3_600_000);
  });

  it('refuses a group model no request could ever name, pointing at the field', () => {
    expect(() =>
      parseConfig({
        ...base,
        groups: [{ name: 'g', api_keys: ['k'], models: ['gemini-2.5-flash', 'Gemini-2.5-Pro'] }],
      }),
    ).toThrow('groups[0].models[1]: expected a model name such as gemini-2.5-flash');
  });
});
