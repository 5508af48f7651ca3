/** Which route a request takes, and what the proxy reads from it. */

export type Route =
  | { readonly kind: 'health' }
  | { readonly kind: 'health_detailed' }
  /** OpenAI-compatible: `/v1/<rest>` goes to `<target_url><rest>`. */
  | { readonly kind: 'openai'; readonly rest: string }
  /** Native Gemini: the path is kept and appended to the native base URL. */
  | { readonly kind: 'native'; readonly model: string }
  | { readonly kind: 'not_found' };

/** Dot segments (plain or percent-encoded) could climb out of the target's path. */
const DOT_SEGMENT = /(^|\/)(\.|%2e){1,2}(\/|$)/i;

export function matchRoute(method: string, path: string): Route {
  if (path === '/health' && (method === 'GET' || method === 'HEAD')) return { kind: 'health' };
  if (path === '/health/detailed' && (method === 'GET' || method === 'HEAD'))
    return { kind: 'health_detailed' };
  if (DOT_SEGMENT.test(path) || path.includes('//')) return { kind: 'not_found' };
  if (path.startsWith('/v1/') && path.length > 4) return { kind: 'openai', rest: path.slice(4) };
  if (path.startsWith('/v1beta/') && path.length > 8) {
    const m = /^\/v1beta\/models\/([^/:]+)/.exec(path);
    return { kind: 'native', model: m?.[1] === undefined ? '' : decodeURIComponent(m[1]) };
  }
  return { kind: 'not_found' };
}

/** Model names arrive as `gemini-2.5-flash` or `models/gemini-2.5-flash`; state is keyed by the bare name. */
export function normalizeModel(model: string): string {
  return model.startsWith('models/') ? model.slice(7) : model;
}

/** Removes the client's `key` parameter (its proxy token) from a raw query string. */
export function stripKeyParam(query: string): { query: string; key: string | undefined } {
  if (query === '' || !/(^|&)key=/.test(query)) return { query, key: undefined };
  const params = new URLSearchParams(query);
  const key = params.get('key') ?? undefined;
  params.delete('key');
  return { query: params.toString(), key };
}
