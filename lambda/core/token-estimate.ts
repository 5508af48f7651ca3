/**
 * Estimates a request's input tokens before it is sent, so that the proxy can claim them against a
 * per-minute input-token budget (reconciled afterwards with the count Gemini reports). The rules:
 *
 * - **Text**: characters / 4, rounded up ("a token is equivalent to about 4 characters",
 *   https://ai.google.dev/gemini-api/docs/tokens). Counted: every string of OpenAI `messages` (content as
 *   a string or text parts, `name`, tool call names and arguments, tool results), `prompt`, `suffix`,
 *   `input` (a string or an array), `instructions`; every string of native `contents`,
 *   `systemInstruction`, embedContent `content` and `title`, batchEmbedContents `requests[].content` and
 *   countTokens `generateContentRequest`. Labels and identifiers are not text (`role`, `type`, `id`,
 *   `tool_call_id`, `detail`, `format`, `mimeType`, `fileUri`, `filename`, thought signatures…). A number
 *   in a prompt (OpenAI token ids) is one token.
 * - **Tools**: `tools` and `functions` definitions, and native `functionCall` / `functionResponse` parts:
 *   their JSON length / 4.
 * - **Images**: 258 tokens when both sides are ≤ 384 px, else 258 per 768×768 tile,
 *   ⌈w/768⌉ × ⌈h/768⌉ × 258 (https://ai.google.dev/gemini-api/docs/tokens, multimodal section; also
 *   https://geminibyexample.com/027-calculate-input-tokens). The size is read from the PNG, GIF, WebP or
 *   JPEG header of inline base64 (an OpenAI `image_url` `data:` URL, a native `inlineData`); an http(s)
 *   URL, another format or an unreadable header counts 258. A side over 16 384 px is taken as 16 384.
 * - **Audio**: 32 tokens per second (docs/tokens; "Gemini represents each second of audio as 32
 *   tokens", https://ai.google.dev/gemini-api/docs/audio). OpenAI `input_audio` and native audio
 *   `inlineData`: the duration from a WAV (or MP4/M4A) header, else from the size at an assumed
 *   128 kbit/s (16 000 bytes a second).
 * - **Video**: 263 tokens per second (docs/tokens), the duration from an MP4/QuickTime movie header
 *   (`mvhd`), else from the size at an assumed 2 Mbit/s (250 000 bytes a second).
 * - **PDF**: 258 tokens per page ("Each document page is equivalent to 258 tokens",
 *   https://ai.google.dev/gemini-api/docs/document-processing); the page count from a linearized PDF's
 *   header, else one page per 50 kB (assumed), 1 to 1000 pages.
 * - **Other inline data** (`text/*`, JSON, an unknown type whose bytes aren't a known media format): its
 *   decoded bytes / 4.
 * - **Files referenced by URI or id** (native `fileData`, OpenAI `file_id`, `file_url`, a `file_data`
 *   that is a URL), size unknown: 258 for an image, else 2 580 (a fixed guess: ten PDF pages, about 10 s
 *   of video or 80 s of audio).
 * - A body that isn't JSON, or is nested deeper than 64 levels: its bytes / 4. A non-empty body counts at
 *   least 1; an empty one 0.
 *
 * Cost: one pass over the body that builds no JSON and allocates nothing for plain values, plus a few
 * hundred decoded bytes per media item (never a whole payload); linear in the body, never throws. About
 * 2 ms per MiB of text and under 1 ms per MiB of inline images; 10 ms per MiB for the densest structure
 * (`test/bench/token-estimate.ts`); about 20 ms per MiB for base64 written with escaped slashes (`\/`),
 * which is decoded in order up to the header (at most 64 KiB per item).
 */
import { MAX_JSON_DEPTH } from './json-fields.js';
import { Base64Data } from './media-headers.js';
import {
  fileReferenceTokens,
  leadingText,
  type MediaKind,
  mimeKind,
  payloadTokens,
  urlTokens,
} from './media-tokens.js';
import {
  AUDIO,
  BLOB,
  containerRole,
  DATA,
  FILE,
  FILE_ID,
  FILE_REF,
  IMAGE,
  MIME,
  memberRole,
  NATIVE_REQUEST,
  OPENAI_REQUEST,
  PROMPT,
  RAW,
  SKIP,
} from './token-roles.js';

/** Where a request goes: an OpenAI-compatible path after `/v1/`, or a native method. */
export type EstimateTarget =
  | { readonly kind: 'openai'; readonly rest: string }
  | { readonly kind: 'native'; readonly method?: string | undefined };

/** Escaped keys (`"cont\u0065nts"`) are decoded, up to this many per body; past it the body counts bytes / 4. */
const MAX_ESCAPED_KEYS = 4096;

const VALUE = 0;
const KEY = 1;
const AFTER = 2;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const isWhitespace = (b: number | undefined) => b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09;
const isNumberByte = (b: number | undefined) =>
  b !== undefined &&
  ((b >= 0x30 && b <= 0x39) || b === 0x2d || b === 0x2b || b === 0x2e || b === 0x65 || b === 0x45);

/** Characters (UTF-16 units) of the JSON string content at bytes[start, end), escapes decoded. */
function textLength(bytes: Uint8Array, start: number, end: number, escaped: boolean): number {
  let length = end - start;
  for (let j = start; j < end; j++) {
    const b = bytes[j]!;
    // A continuation byte adds nothing; a 4-byte sequence is two UTF-16 units.
    if (b >= 0x80) length -= b < 0xc0 ? 1 : b >= 0xf0 ? -1 : 0;
  }
  for (let j = escaped ? bytes.indexOf(BACKSLASH, start) : -1; j >= 0 && j < end; ) {
    const unicode = bytes[j + 1] === 0x75;
    length -= unicode ? 5 : 1;
    j = bytes.indexOf(BACKSLASH, j + (unicode ? 6 : 2));
  }
  return length;
}

/** Estimated input tokens of a request body, for claiming against a per-minute token budget. Never throws. */
export function estimateInputTokens(target: EstimateTarget, body: Uint8Array): number {
  if (body.length === 0) return 0;
  let estimate: number | undefined;
  try {
    estimate = walk(body, target.kind === 'openai' ? OPENAI_REQUEST : NATIVE_REQUEST);
  } catch {
    estimate = undefined;
  }
  return Math.max(1, estimate ?? Math.ceil(body.length / 4));
}

/** The estimate of a JSON body, or undefined when it isn't JSON (or is too deep) and counts by bytes. */
function walk(bytes: Uint8Array, root: number): number | undefined {
  const n = bytes.length;
  const size = MAX_JSON_DEPTH + 1;
  // Per open container (index = depth): array or object, role of its members, where a RAW value began,
  // and for a media object its kind and base64 `data`.
  const isArray = new Uint8Array(size);
  const roles = new Uint8Array(size);
  const rawFrom = new Float64Array(size);
  const kinds: MediaKind[] = new Array(size);
  const dataFrom = new Float64Array(size);
  const dataTo = new Float64Array(size);
  const dataEscaped = new Uint8Array(size);
  /** Characters of text and tool JSON (4 to a token), and tokens counted directly (media, token ids). */
  let chars = 0;
  let tokens = 0;
  let escapedKeys = 0;
  /** The first backslash at or after the position it was searched from (n when none). */
  let nextBackslash = -1;
  /** The last string scanned held a backslash. */
  let escaped = false;

  /** Index of the closing quote of the string whose content starts at `from`, or -1. */
  const stringEnd = (from: number): number => {
    escaped = false;
    // Each search starts past the last one's find: linear however many escapes the string holds.
    let quote = bytes.indexOf(QUOTE, from);
    for (;;) {
      if (quote < 0) return -1;
      if (nextBackslash < from) {
        nextBackslash = bytes.indexOf(BACKSLASH, from);
        if (nextBackslash < 0) nextBackslash = n;
      }
      if (nextBackslash > quote) return quote;
      escaped = true;
      from = nextBackslash + 2;
      if (from > quote) quote = bytes.indexOf(QUOTE, from);
    }
  };
  /** stringEnd that also counts the string's characters (UTF-16 units, as JavaScript counts them). */
  const textEnd = (from: number): number => {
    const end = stringEnd(from);
    if (end >= 0) chars += textLength(bytes, from, end, escaped);
    return end;
  };
  const closeContainer = (depth: number, end: number) => {
    if (rawFrom[depth]! >= 0) chars += textLength(bytes, rawFrom[depth]!, end, false);
    const role = roles[depth];
    if ((role === AUDIO || role === BLOB) && dataFrom[depth]! >= 0) {
      const data = new Base64Data(bytes, dataFrom[depth]!, dataTo[depth]!, dataEscaped[depth] === 1);
      tokens += payloadTokens(kinds[depth], data);
    } else if (role === FILE_REF) tokens += fileReferenceTokens(kinds[depth]);
  };
  const onString = (role: number, start: number, end: number, depth: number) => {
    if (role === RAW) chars += textLength(bytes, start, end, false) + 2;
    else if (role === IMAGE || role === FILE)
      tokens += urlTokens(bytes, start, end, escaped, role === IMAGE ? 'image' : 'data');
    else if (role === FILE_ID) tokens += fileReferenceTokens(undefined);
    else if (role === MIME) kinds[depth] = mimeKind(leadingText(bytes, start, end, 64)[0]);
    else if (role === DATA) {
      dataFrom[depth] = start;
      dataTo[depth] = end;
      dataEscaped[depth] = escaped ? 1 : 0;
    }
  };

  let i = n >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf ? 3 : 0;
  let depth = 0;
  /** What comes next: a value, a key, or what follows a value (`,` or a closing bracket). */
  let expect = VALUE;
  let role = root;
  for (;;) {
    while (isWhitespace(bytes[i])) i++;
    if (expect === AFTER) {
      if (depth === 0) return i === n ? Math.ceil(chars / 4) + tokens : undefined;
      const b = bytes[i++];
      if (b === 0x2c) {
        expect = isArray[depth] ? VALUE : KEY;
        role = roles[depth]!;
      } else if (b === (isArray[depth] ? 0x5d : 0x7d)) closeContainer(depth--, i);
      else return undefined;
      continue;
    }
    if (expect === KEY) {
      if (bytes[i] !== QUOTE) return undefined;
      const end = stringEnd(i + 1);
      if (end < 0) return undefined;
      const container = roles[depth]!;
      if (escaped && container !== SKIP && ++escapedKeys > MAX_ESCAPED_KEYS) return undefined;
      role = memberRole(container, bytes, i + 1, end, escaped);
      i = end + 1;
      while (isWhitespace(bytes[i])) i++;
      if (bytes[i++] !== 0x3a) return undefined;
      expect = VALUE;
      continue;
    }
    const b = bytes[i];
    if (b === 0x7b || b === 0x5b) {
      if (depth === MAX_JSON_DEPTH) return undefined;
      depth++;
      const array = b === 0x5b;
      isArray[depth] = array ? 1 : 0;
      roles[depth] = containerRole(role, array);
      rawFrom[depth] = role === RAW ? i : -1;
      if (role === AUDIO || role === BLOB || role === FILE) {
        kinds[depth] = role === AUDIO ? 'audio' : undefined;
        dataFrom[depth] = -1;
      }
      i++;
      while (isWhitespace(bytes[i])) i++;
      if (bytes[i] === (array ? 0x5d : 0x7d)) {
        closeContainer(depth--, ++i);
        expect = AFTER;
      } else {
        expect = array ? VALUE : KEY;
        role = roles[depth]!;
      }
      continue;
    }
    if (b === QUOTE) {
      const end = role === PROMPT ? textEnd(i + 1) : stringEnd(i + 1);
      if (end < 0) return undefined;
      if (role !== PROMPT) onString(role, i + 1, end, depth);
      i = end + 1;
    } else {
      const start = i;
      if (b === 0x74 || b === 0x6e) i += 4;
      else if (b === 0x66) i += 5;
      else while (isNumberByte(bytes[i])) i++;
      if (i === start || i > n) return undefined;
      if (role === RAW) chars += i - start;
      else if (role === PROMPT && isNumberByte(b)) tokens++;
    }
    expect = AFTER;
  }
}
