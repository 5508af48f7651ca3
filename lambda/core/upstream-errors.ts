/**
 * Gemini's error answers made fit to pass on. Whatever Gemini (or a Google front end) sent — JSON, a
 * text or HTML page, nothing — the client gets JSON in the shape its SDK parses: OpenAI's on `/v1/*`,
 * Gemini's own on `/v1beta/*`. Key material is scrubbed from every string; a body that is not a Gemini
 * error is never echoed (it could quote anything).
 */

import type { Scrubber } from './credentials.js';
import { clientResponseHeaders } from './headers.js';
import type { ProxyResponse, UpstreamResponse } from './http.js';
import { retryAfterSeconds } from './refusals.js';

/** Which clients read the answer: OpenAI's SDKs (`/v1/*`) or Gemini's (`/v1beta/*`). */
export type ErrorDialect = 'openai' | 'native';

/** google.rpc canonical codes for the statuses Gemini answers with (Gemini's own `status` field). */
const CANONICAL: Readonly<Record<number, string>> = {
  400: 'INVALID_ARGUMENT',
  401: 'UNAUTHENTICATED',
  403: 'PERMISSION_DENIED',
  404: 'NOT_FOUND',
  409: 'ABORTED',
  429: 'RESOURCE_EXHAUSTED',
  499: 'CANCELLED',
  500: 'INTERNAL',
  501: 'UNIMPLEMENTED',
  502: 'UNAVAILABLE',
  503: 'UNAVAILABLE',
  504: 'DEADLINE_EXCEEDED',
};
/** Deeper than any Gemini error (details nest three levels); deeper values are dropped, not recursed. */
const MAX_DEPTH = 16;
/** A media type worth naming in a message: token characters only (nothing an upstream could smuggle). */
const MEDIA_TYPE = /^[a-z0-9][a-z0-9!#$&^_.+-]*\/[a-z0-9][a-z0-9!#$&^_.+-]*$/i;

type JsonRecord = Record<string, unknown>;

function isRecord(value: unknown): value is JsonRecord {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The OpenAI `type` for an upstream status. */
function openAiType(status: number): string {
  if (status === 429) return 'rate_limit_error';
  return status >= 500 ? 'server_error' : 'invalid_request_error';
}

/** A parsed JSON value with every string (and member name) scrubbed. */
function scrubJson(value: unknown, scrubber: Scrubber, depth = 0): unknown {
  if (typeof value === 'string') return scrubber.scrub(value);
  if (typeof value !== 'object' || value === null) return value;
  if (depth >= MAX_DEPTH) return null;
  if (Array.isArray(value)) return value.map((v) => scrubJson(v, scrubber, depth + 1));
  const out: JsonRecord = {};
  for (const [name, v] of Object.entries(value))
    out[scrubber.scrub(name)] = scrubJson(v, scrubber, depth + 1);
  return out;
}

/** Gemini's error object from `{"error":{…}}` or the array-wrapped `[{"error":{…}}]`; else undefined. */
function errorObject(parsed: unknown): JsonRecord | undefined {
  const top = Array.isArray(parsed) ? parsed[0] : parsed;
  return isRecord(top) && isRecord(top.error) ? top.error : undefined;
}

/**
 * A Retry-After from upstream as a sane whole number of seconds (1 s up to a Pacific day), or undefined
 * when it is neither a number of seconds nor an HTTP date.
 */
export function saneRetryAfter(value: string | undefined, now: number): number | undefined {
  const v = value?.trim() ?? '';
  if (/^\d+(\.\d+)?(e[+-]?\d+)?$/i.test(v)) return retryAfterSeconds(Number(v) * 1000);
  const at = /GMT$/i.test(v) ? Date.parse(v) : Number.NaN;
  return Number.isNaN(at) ? undefined : retryAfterSeconds(at - now);
}

/**
 * The client's answer to an upstream error (status ≥ 400) whose body was read as `text` (undefined: too
 * large to read whole). The status is kept; the body is always JSON.
 */
export function upstreamErrorAnswer(
  dialect: ErrorDialect,
  response: UpstreamResponse,
  text: string | undefined,
  scrubber: Scrubber,
  now: number,
): ProxyResponse {
  const { status } = response;
  const copied = clientResponseHeaders(response.headers);
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(copied)) {
    // The body is JSON of our own framing now; Node frames it anew.
    if (name === 'content-length' || name === 'content-type' || name === 'content-encoding') continue;
    if (name !== 'retry-after') headers[name] = scrubber.scrub(value);
  }
  headers['content-type'] = 'application/json';
  const retryAfter = saneRetryAfter(copied['retry-after'], now);
  if (retryAfter !== undefined) headers['retry-after'] = String(retryAfter);

  let parsed: unknown;
  let what: string;
  if (text === undefined) what = 'an oversized error body';
  else if (text.trim() === '') what = 'an empty body';
  else {
    try {
      parsed = scrubJson(JSON.parse(text), scrubber);
      what = 'JSON that is not an error';
    } catch {
      const type = scrubber.scrub(copied['content-type']?.split(';')[0]?.trim() ?? '');
      what = `a body that is not JSON${MEDIA_TYPE.test(type) ? ` (${type})` : ''}`;
    }
  }
  const error = errorObject(parsed);
  const body =
    dialect === 'native' ? nativeBody(status, parsed, error, what) : openAiBody(status, error, what);
  return { status, headers, body: JSON.stringify(body) };
}

/** Gemini's own error as it came (native SDKs parse it), or one in its shape for anything else. */
function nativeBody(status: number, parsed: unknown, error: JsonRecord | undefined, what: string): unknown {
  if (error !== undefined) return parsed;
  return {
    error: {
      code: status,
      message: `Gemini answered ${status} with ${what}.`,
      status: CANONICAL[status] ?? 'UNKNOWN',
    },
  };
}

/** OpenAI's `{"error":{"message","type","param","code"}}`, keeping every other field Gemini sent. */
function openAiBody(status: number, error: JsonRecord | undefined, what: string): unknown {
  if (error === undefined) {
    return {
      error: {
        message: `Gemini answered ${status} with ${what}.`,
        type: openAiType(status),
        param: null,
        code: 'upstream_error',
      },
    };
  }
  const { message, type, param, code, ...rest } = error;
  return {
    error: {
      message: typeof message === 'string' ? message : `Gemini answered ${status}.`,
      type: typeof type === 'string' ? type : openAiType(status),
      param: typeof param === 'string' ? param : null,
      code: code ?? null,
      ...rest,
    },
  };
}
