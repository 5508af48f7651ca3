/** Which route a request takes, and what the proxy reads from it. */

export type Route =
  | { readonly kind: 'health' }
  | { readonly kind: 'health_detailed' }
  /** OpenAI-compatible: `/v1/<rest>` goes to `<target_url><rest>`. */
  | { readonly kind: 'openai'; readonly rest: string }
  /**
   * Native Gemini: the path is kept and appended to the native base URL. `model` is the decoded segment
   * after `models/` ('' if none), `method` what follows its `:` as sent (undefined if no `:`).
   */
  | { readonly kind: 'native'; readonly model: string; readonly method?: string | undefined }
  | { readonly kind: 'not_found' };

/**
 * Dot segments (plain or percent-encoded) and backslashes (URL parsers treat `\` as `/`) could climb out
 * of the target's path and carry a key to another path on that host.
 */
const DOT_SEGMENT = /(^|[/\\])(\.|%2e){1,2}([/\\]|$)/i;
const BACKSLASH = /\\|%5c/i;

export function matchRoute(method: string, path: string): Route {
  if (path === '/health' && (method === 'GET' || method === 'HEAD')) return { kind: 'health' };
  if (path === '/health/detailed' && (method === 'GET' || method === 'HEAD'))
    return { kind: 'health_detailed' };
  if (DOT_SEGMENT.test(path) || BACKSLASH.test(path) || path.includes('//')) return { kind: 'not_found' };
  if (path.startsWith('/v1/') && path.length > 4) return { kind: 'openai', rest: path.slice(4) };
  if (path.startsWith('/v1beta/') && path.length > 8) {
    const m = /^\/v1beta\/models\/([^/:]+)(?::(.*))?/.exec(path);
    if (m?.[1] === undefined) return { kind: 'native', model: '' };
    // Decoded, so that a `%3A` or `%2F` inside it shows (and gets the name refused as not canonical).
    const model = safeDecode(m[1]);
    return model === undefined ? { kind: 'not_found' } : { kind: 'native', model, method: m[2] };
  }
  return { kind: 'not_found' };
}

/** Model names arrive as `gemini-2.5-flash` or `models/gemini-2.5-flash`; state is keyed by the bare name. */
export function normalizeModel(model: string): string {
  return model.startsWith('models/') ? model.slice(7) : model;
}

/** A percent-encoded URL part decoded (`+` as a space), or undefined if it doesn't decode. */
export function safeDecode(s: string): string | undefined {
  try {
    return decodeURIComponent(s.replace(/\+/g, ' '));
  } catch {
    return undefined;
  }
}

/**
 * Removes the client's `key` parameter (its proxy token) from a raw query string, however its name is
 * encoded (`key`, `%6Bey`, …), keeping the other parameters byte for byte.
 */
export function stripKeyParam(query: string): { query: string; key: string | undefined } {
  if (query === '') return { query, key: undefined };
  let key: string | undefined;
  const parts = query.split('&');
  const kept: string[] = [];
  for (const part of parts) {
    const eq = part.indexOf('=');
    const name = eq === -1 ? part : part.slice(0, eq);
    // A name that doesn't decode can't be "key"; keep it (and forward it) as it is.
    if (name.length <= 9 && safeDecode(name) === 'key') {
      key ??= safeDecode(eq === -1 ? '' : part.slice(eq + 1));
      continue;
    }
    kept.push(part);
  }
  return kept.length === parts.length ? { query, key } : { query: kept.join('&'), key };
}
