/**
 * Reads the two fields the proxy acts on — the top-level `model` and `stream` of a JSON body — without
 * building the document: one pass over the bytes that validates the JSON as strictly as `JSON.parse`,
 * skips nested values without allocating them, and refuses nesting deeper than a bound. A 10 MiB body
 * nested millions deep costs JSON.parse hundreds of MB and seconds of blocked event loop; this costs
 * neither.
 */

/** Nesting deeper than this is refused (Gemini's own parser refuses around 100). */
export const MAX_JSON_DEPTH = 64;

export type BodyFields =
  /** Empty body. */
  | { readonly kind: 'empty' }
  /** Not JSON. `opensLikeJson`: its first significant byte is `{` or `[` (so it was meant as JSON). */
  | { readonly kind: 'not_json'; readonly opensLikeJson: boolean }
  /** Valid so far, but nested deeper than the bound. */
  | { readonly kind: 'too_deep' }
  /** A top-level key the proxy reads appears more than once (parsers disagree on which one wins). */
  | { readonly kind: 'duplicate'; readonly field: 'model' | 'stream' }
  | {
      readonly kind: 'json';
      /**
       * The top-level `model`: absent (undefined), its decoded text, or `null` when present but not a
       * string (or a string too long to be a model name, which is then not decoded).
       */
      readonly model: string | null | undefined;
      /** True only when the top-level `stream` is the literal `true`. */
      readonly stream: boolean;
    };

/** Longest raw (still escaped) `model` string that is decoded; canonical names are far shorter. */
const MAX_MODEL_BYTES = 512;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;
const LBRACE = 0x7b;
const RBRACE = 0x7d;
const LBRACKET = 0x5b;
const RBRACKET = 0x5d;
const MINUS = 0x2d;
const PLUS = 0x2b;
const DOT = 0x2e;
const ZERO = 0x30;
const NINE = 0x39;

const OBJECT = 1;
const ARRAY = 2;

/** What the parser expects next. */
const VALUE = 0;
const AFTER_VALUE = 1;
const KEY = 2;

/** Top-level keys the proxy reads. */
const OTHER = 0;
const MODEL = 1;
const STREAM = 2;

const MODEL_BYTES = [0x6d, 0x6f, 0x64, 0x65, 0x6c];
const STREAM_BYTES = [0x73, 0x74, 0x72, 0x65, 0x61, 0x6d];

const isWhitespace = (b: number) => b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09;
const isDigit = (b: number) => b >= ZERO && b <= NINE;
const isHex = (b: number) => isDigit(b) || (b >= 0x61 && b <= 0x66) || (b >= 0x41 && b <= 0x46);
const decoder = new TextDecoder();
/** Bytes allowed after a backslash besides `u`: `" \ / b f n r t`. */
const SIMPLE_ESCAPES = new Uint8Array(256);
for (const c of '"\\/bfnrt') SIMPLE_ESCAPES[c.charCodeAt(0)] = 1;

function skipWhitespace(bytes: Uint8Array, i: number): number {
  while (i < bytes.length && isWhitespace(bytes[i]!)) i++;
  return i;
}

/**
 * Given `i` just past an opening quote, returns the index just past the closing quote, or -1 when the
 * string is not valid JSON (a raw control character, a bad escape, no end). `escaped[0]` tells whether
 * it held a backslash.
 */
function skipString(bytes: Uint8Array, i: number, escaped: [boolean]): number {
  escaped[0] = false;
  const n = bytes.length;
  while (i < n) {
    const b = bytes[i]!;
    if (b === QUOTE) return i + 1;
    if (b < 0x20) return -1;
    if (b === BACKSLASH) {
      escaped[0] = true;
      const e = bytes[i + 1];
      if (e === 0x75) {
        // \uXXXX
        for (let k = 2; k < 6; k++) if (i + k >= n || !isHex(bytes[i + k]!)) return -1;
        i += 6;
        continue;
      }
      if (e === undefined || SIMPLE_ESCAPES[e] !== 1) return -1;
      i += 2;
      continue;
    }
    i++;
  }
  return -1;
}

/** Index just past a JSON number starting at `i`, or -1. */
function skipNumber(bytes: Uint8Array, i: number): number {
  if (bytes[i] === MINUS) i++;
  if (bytes[i] === ZERO) i++;
  else if (isDigit(bytes[i] ?? -1)) while (isDigit(bytes[i] ?? -1)) i++;
  else return -1;
  if (bytes[i] === DOT) {
    i++;
    if (!isDigit(bytes[i] ?? -1)) return -1;
    while (isDigit(bytes[i] ?? -1)) i++;
  }
  if (bytes[i] === 0x65 || bytes[i] === 0x45) {
    i++;
    if (bytes[i] === PLUS || bytes[i] === MINUS) i++;
    if (!isDigit(bytes[i] ?? -1)) return -1;
    while (isDigit(bytes[i] ?? -1)) i++;
  }
  return i;
}

const TRUE = [0x74, 0x72, 0x75, 0x65];
const FALSE = [0x66, 0x61, 0x6c, 0x73, 0x65];
const NULL = [0x6e, 0x75, 0x6c, 0x6c];

function matches(bytes: Uint8Array, i: number, word: readonly number[]): boolean {
  for (let k = 0; k < word.length; k++) if (bytes[i + k] !== word[k]) return false;
  return true;
}

/** Which top-level key the string in bytes[start, end) (quotes excluded) is, escapes decoded. */
function keyOf(bytes: Uint8Array, start: number, end: number, escaped: boolean): number {
  const length = end - start;
  if (!escaped) {
    if (length === 5 && matches(bytes, start, MODEL_BYTES)) return MODEL;
    if (length === 6 && matches(bytes, start, STREAM_BYTES)) return STREAM;
    return OTHER;
  }
  // Escaped spellings (`"mo\u0064el"`) are the same key to every JSON parser. Six characters of six
  // bytes each is the longest "stream" can be written.
  if (length > 36) return OTHER;
  const key = JSON.parse(decoder.decode(bytes.subarray(start - 1, end + 1))) as string;
  return key === 'model' ? MODEL : key === 'stream' ? STREAM : OTHER;
}

/**
 * The top-level `model` and `stream` of a body, and whether it is JSON at all. Strict JSON (RFC 8259, as
 * `JSON.parse` reads it after UTF-8 decoding), except that a leading UTF-8 byte-order mark is allowed.
 */
export function scanBodyFields(bytes: Uint8Array, maxDepth = MAX_JSON_DEPTH): BodyFields {
  const n = bytes.length;
  if (n === 0) return { kind: 'empty' };
  let i = n >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf ? 3 : 0;
  i = skipWhitespace(bytes, i);
  const opensLikeJson = bytes[i] === LBRACE || bytes[i] === LBRACKET;
  const notJson: BodyFields = { kind: 'not_json', opensLikeJson };
  // Kinds of the open containers, outermost first: stack[d] for depth d (1-based).
  const stack = new Uint8Array(maxDepth + 1);
  const escaped: [boolean] = [false];
  let depth = 0;
  let mode = VALUE;
  /** The top-level key whose value comes next (meaningful at depth 1 in an object). */
  let field = OTHER;
  let model: string | null | undefined;
  let stream = false;
  let seenModel = false;
  let seenStream = false;

  for (;;) {
    i = skipWhitespace(bytes, i);
    if (mode === AFTER_VALUE) {
      if (depth === 0) return i === n ? { kind: 'json', model, stream } : notJson;
      const b = bytes[i];
      if (b === COMMA) {
        i++;
        mode = stack[depth] === OBJECT ? KEY : VALUE;
      } else if (b === (stack[depth] === OBJECT ? RBRACE : RBRACKET)) {
        i++;
        depth--;
      } else return notJson;
      continue;
    }
    if (mode === KEY) {
      if (bytes[i] !== QUOTE) return notJson;
      const end = skipString(bytes, i + 1, escaped);
      if (end < 0) return notJson;
      if (depth === 1) {
        field = keyOf(bytes, i + 1, end - 1, escaped[0]);
        if (field === MODEL) {
          if (seenModel) return { kind: 'duplicate', field: 'model' };
          seenModel = true;
        } else if (field === STREAM) {
          if (seenStream) return { kind: 'duplicate', field: 'stream' };
          seenStream = true;
        }
      }
      i = skipWhitespace(bytes, end);
      if (bytes[i] !== COLON) return notJson;
      i++;
      mode = VALUE;
      continue;
    }
    // A value.
    if (i >= n) return notJson;
    const b = bytes[i]!;
    const top = depth === 1 && stack[1] === OBJECT ? field : OTHER;
    if (b === LBRACE || b === LBRACKET) {
      if (top === MODEL) model = null;
      if (depth === maxDepth) return { kind: 'too_deep' };
      depth++;
      stack[depth] = b === LBRACE ? OBJECT : ARRAY;
      i = skipWhitespace(bytes, i + 1);
      if (bytes[i] === (b === LBRACE ? RBRACE : RBRACKET)) {
        i++;
        depth--;
        mode = AFTER_VALUE;
      } else mode = b === LBRACE ? KEY : VALUE;
      continue;
    }
    if (b === QUOTE) {
      const end = skipString(bytes, i + 1, escaped);
      if (end < 0) return notJson;
      if (top === MODEL) {
        model =
          end - i > MAX_MODEL_BYTES ? null : (JSON.parse(decoder.decode(bytes.subarray(i, end))) as string);
      }
      i = end;
    } else if (b === 0x74 && matches(bytes, i, TRUE)) {
      if (top === STREAM) stream = true;
      if (top === MODEL) model = null;
      i += 4;
    } else if ((b === 0x66 && matches(bytes, i, FALSE)) || (b === 0x6e && matches(bytes, i, NULL))) {
      if (top === MODEL) model = null;
      i += b === 0x66 ? 5 : 4;
    } else {
      const end = skipNumber(bytes, i);
      if (end < 0) return notJson;
      if (top === MODEL) model = null;
      i = end;
    }
    mode = AFTER_VALUE;
  }
}
