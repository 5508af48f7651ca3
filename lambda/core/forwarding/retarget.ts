/** The same request for another model: the body's top-level `model`, and the path of a native call. */
import type { UpstreamCall } from './groups.js';

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const LBRACE = 0x7b;
const RBRACE = 0x7d;
const LBRACKET = 0x5b;
const RBRACKET = 0x5d;
/** Longest raw key that can still spell `model` (five `\uXXXX` escapes), quotes included. */
const LONGEST_MODEL_KEY = 32;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Index just past the closing quote of the string whose opening quote is at `i` (the JSON is valid). */
function stringEnd(bytes: Uint8Array, i: number): number {
  for (i++; i < bytes.length; i++) {
    if (bytes[i] === BACKSLASH) i++;
    else if (bytes[i] === QUOTE) return i + 1;
  }
  return bytes.length;
}

/**
 * Where the value of the top-level `model` string is, quotes included, in a body already read by
 * `scanBodyFields` (valid JSON, one top-level `model` at most, keys however escaped); undefined if none.
 */
export function modelSpan(bytes: Uint8Array): { readonly start: number; readonly end: number } | undefined {
  let depth = 0;
  let inObject = false;
  let expectKey = false;
  let key: string | undefined;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i];
    if (b === QUOTE) {
      const end = stringEnd(bytes, i);
      if (depth === 1 && inObject) {
        if (expectKey) {
          key =
            end - i > LONGEST_MODEL_KEY
              ? undefined
              : (JSON.parse(decoder.decode(bytes.subarray(i, end))) as string);
          expectKey = false;
        } else if (key === 'model') return { start: i, end };
      }
      i = end - 1;
    } else if (b === LBRACE || b === LBRACKET) {
      depth++;
      if (depth === 1) {
        inObject = b === LBRACE;
        expectKey = inObject;
      }
    } else if (b === RBRACE || b === RBRACKET) depth--;
    else if (b === COMMA && depth === 1) expectKey = inObject;
  }
  return undefined;
}

/** The body with its top-level `model` string replaced by `model`, every other byte as it was. */
export function withBodyModel(body: Uint8Array, model: string): Uint8Array | undefined {
  const span = modelSpan(body);
  if (span === undefined) return undefined;
  const value = encoder.encode(JSON.stringify(model));
  const out = new Uint8Array(body.byteLength - (span.end - span.start) + value.byteLength);
  out.set(body.subarray(0, span.start));
  out.set(value, span.start);
  out.set(body.subarray(span.end), span.start + value.byteLength);
  return out;
}

const NATIVE_MODEL = /^(\/v1beta\/models\/)[^/:]+/;

/**
 * The call for another (canonical) model, or undefined when it names no model it could swap. OpenAI-
 * compatible: the body's `model`. Native: the path's model segment, and the body's `model` if it has one
 * (the proxy only lets through a body that names the path's model).
 */
export function retarget<T extends UpstreamCall>(call: T, model: string): T | undefined {
  const { target, request } = call;
  const body = withBodyModel(call.body, model);
  if (target.kind === 'openai') return body === undefined ? undefined : { ...call, body };
  const segment = NATIVE_MODEL.exec(request.path);
  if (segment === null || !target.url.endsWith(request.path)) return undefined;
  const base = target.url.slice(0, target.url.length - request.path.length);
  const path = `${segment[1]}${model}${request.path.slice(segment[0].length)}`;
  return { ...call, body: body ?? call.body, target: { ...target, url: `${base}${path}` } };
}
