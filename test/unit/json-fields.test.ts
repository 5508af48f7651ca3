import { describe, expect, it } from 'vitest';
import { type BodyFields, MAX_JSON_DEPTH, scanBodyFields } from '../../lambda/core/json-fields.js';
import { type Rng, random } from '../support/random.js';

const scan = (text: string) => scanBodyFields(Buffer.from(text, 'utf8'));

/** What JSON.parse makes of the same text, in the scanner's terms (duplicates aside: it can't see them). */
function byJsonParse(text: string): BodyFields {
  if (text === '') return { kind: 'empty' };
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    const first = text.trimStart()[0];
    return { kind: 'not_json', opensLikeJson: first === '{' || first === '[' };
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    return { kind: 'json', model: undefined, stream: false };
  const record = parsed as Record<string, unknown>;
  const model = Object.hasOwn(record, 'model')
    ? typeof record.model === 'string'
      ? record.model
      : null
    : undefined;
  return { kind: 'json', model, stream: record.stream === true };
}

const STRINGS = [
  '',
  'gemini-2.5-flash',
  'a"b',
  'back\\slash',
  'nl\n',
  'é',
  '😀',
  '\u0000',
  '\u2028',
  'model',
];
const KEYS = ['model', 'stream', 'messages', 'x', 'mode', 'models', 'Model', 'streams', '__proto__', ''];

/** Writes a key the way a hostile client might: plain, or with some characters \u-escaped. */
function spellKey(rng: Rng, key: string): string {
  if (rng.next() < 0.7) return JSON.stringify(key);
  const chars = [...key].map((c) =>
    rng.next() < 0.5 ? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}` : c,
  );
  return `"${chars.join('')}"`;
}

function value(rng: Rng, depth: number): string {
  switch (rng.int(depth > 4 ? 5 : 8)) {
    case 0:
      return JSON.stringify((rng.next() - 0.5) * 10 ** rng.int(30));
    case 1:
      return JSON.stringify(rng.pick(STRINGS));
    case 2:
      return rng.pick(['true', 'false', 'null']);
    case 3:
      return rng.pick(['0', '-0', '1e5', '-1.5E-3', '123456789012345678901234567890']);
    case 4:
      return JSON.stringify(rng.pick(STRINGS) + rng.pick(STRINGS));
    case 5:
      return `[${Array.from({ length: rng.int(4) }, () => value(rng, depth + 1)).join(',')}]`;
    default: {
      const members = Array.from({ length: rng.int(5) }, () => {
        const ws = rng.pick(['', ' ', '\n\t', '\r\n  ']);
        return `${ws}${spellKey(rng, rng.pick(KEYS))}${ws}:${ws}${value(rng, depth + 1)}${ws}`;
      });
      return `{${members.join(',')}}`;
    }
  }
}

/** Breaks a valid text in a way JSON.parse may or may not accept. */
function mutate(rng: Rng, text: string): string {
  const at = rng.int(text.length + 1);
  switch (rng.int(5)) {
    case 0:
      return text.slice(0, at);
    case 1:
      return text.slice(0, at) + text.slice(at + 1);
    case 2:
      return (
        text.slice(0, at) +
        rng.pick([',', '}', ']', '"', '\\', ':', '01', '-', 'tru', ' ', '\u0001']) +
        text.slice(at)
      );
    case 3:
      return `${text}${rng.pick([',', ' x', '}', '\n', ' '])}`;
    default:
      return text.replace(/,/, ',,');
  }
}

describe('Function: scanBodyFields', () => {
  it('reads the top-level model and stream', () => {
    expect(scan('{"model":"gemini-2.5-flash","stream":true}')).toEqual({
      kind: 'json',
      model: 'gemini-2.5-flash',
      stream: true,
    });
    expect(scan(' \n{ "stream" : false , "model" : "m" } \t')).toEqual({
      kind: 'json',
      model: 'm',
      stream: false,
    });
  });

  it('ignores model and stream keys that are not at the top level', () => {
    expect(scan('{"messages":[{"model":"x","stream":true}],"cfg":{"model":"y"}}')).toEqual({
      kind: 'json',
      model: undefined,
      stream: false,
    });
  });

  it('decodes escaped keys and values as every JSON parser does', () => {
    expect(scan('{"mo\\u0064el":"gemini\\u002d2.5-flash","str\\u0065am":true}')).toEqual({
      kind: 'json',
      model: 'gemini-2.5-flash',
      stream: true,
    });
    expect(scan('{"x":"a\\"model\\":\\"b","model":"c\\\\"}')).toEqual({
      kind: 'json',
      model: 'c\\',
      stream: false,
    });
  });

  it('refuses a second top-level model or stream, however it is spelled', () => {
    expect(scan('{"model":"a","messages":[],"model":"b"}')).toEqual({ kind: 'duplicate', field: 'model' });
    expect(scan('{"model":"a","mod\\u0065l":"a"}')).toEqual({ kind: 'duplicate', field: 'model' });
    expect(scan('{"stream":false,"stream":true}')).toEqual({ kind: 'duplicate', field: 'stream' });
    expect(scan('{"model":"a","x":{"model":"b"}}')).toMatchObject({ kind: 'json', model: 'a' });
  });

  it('marks a model that is not a string, or too long to be a name', () => {
    for (const v of ['1', 'null', 'true', 'false', '{}', '["a"]', `"${'a'.repeat(600)}"`])
      expect(scan(`{"model":${v}}`)).toEqual({ kind: 'json', model: null, stream: false });
  });

  it('treats only the literal true as a stream', () => {
    for (const v of ['"true"', '1', '{}', '[true]', 'null'])
      expect(scan(`{"stream":${v}}`)).toMatchObject({ stream: false });
  });

  it('reads bodies that are JSON but not objects as having no model', () => {
    for (const text of ['[]', '[{"model":"x"}]', '"model"', '1', 'null', 'true'])
      expect(scan(text)).toEqual({ kind: 'json', model: undefined, stream: false });
  });

  it('tells empty, non-JSON and JSON-looking broken bodies apart', () => {
    expect(scanBodyFields(new Uint8Array(0))).toEqual({ kind: 'empty' });
    expect(scan('model=gemini')).toEqual({ kind: 'not_json', opensLikeJson: false });
    expect(scan('  ')).toEqual({ kind: 'not_json', opensLikeJson: false });
    expect(scan('--boundary\r\n')).toEqual({ kind: 'not_json', opensLikeJson: false });
    for (const text of [
      '{',
      '{"model":"a",}',
      "{'model':'a'}",
      '{"model":"a"}x',
      '[1,]',
      '{"a":01}',
      '{"a":"\u0001"}',
    ])
      expect(scan(text)).toEqual({ kind: 'not_json', opensLikeJson: true });
  });

  it('accepts a leading UTF-8 byte-order mark', () => {
    const bytes = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"model":"m"}')]);
    expect(scanBodyFields(bytes)).toEqual({ kind: 'json', model: 'm', stream: false });
  });

  it(`refuses nesting deeper than ${MAX_JSON_DEPTH}, and takes nesting up to it`, () => {
    const nested = (d: number) => `{"model":"m","x":${'['.repeat(d - 1)}${']'.repeat(d - 1)}}`;
    expect(scan(nested(MAX_JSON_DEPTH))).toMatchObject({ kind: 'json', model: 'm' });
    expect(scan(nested(MAX_JSON_DEPTH + 1))).toEqual({ kind: 'too_deep' });
    // Unclosed: refused at the bound, without reading on.
    expect(scan('['.repeat(5_000_000))).toEqual({ kind: 'too_deep' });
  });

  it('agrees with JSON.parse on 5,000 random valid and broken bodies', () => {
    // Prepare
    const rng = random(20261203);
    let valid = 0;
    let broken = 0;

    for (let n = 0; n < 5000; n++) {
      // Act
      const good = value(rng, 0);
      const text = rng.next() < 0.3 ? mutate(rng, good) : good;
      const scanned = scan(text);
      const parsed = byJsonParse(text);

      // Assess: same verdict and fields (a duplicate key is refused where JSON.parse keeps the last)
      if (scanned.kind === 'duplicate') continue;
      expect(scanned, text).toEqual(parsed);
      if (parsed.kind === 'json') valid++;
      else broken++;
    }
    expect(valid).toBeGreaterThan(1000);
    expect(broken).toBeGreaterThan(300);
  });
});
