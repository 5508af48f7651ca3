/**
 * What a client may reach through the proxy. Every client shares the pooled keys, and a key's Google
 * project holds resources that any caller with that key can list, read and delete: uploaded files, cached
 * contents, batches, tuned models, long-running operations, corpora, file search stores. Those families
 * are refused unless the operator opts in (`server.allow_route_families`); routes the proxy does not know
 * are not forwarded at all.
 */
import type { ProxyResponse } from './http.js';
import { openAiError } from './openai-errors.js';
import { safeDecode } from './routes.js';

/** Families of routes that reach project-wide resources, in config spelling. */
export const ROUTE_FAMILIES = [
  'files',
  'cached_contents',
  'batches',
  'tuned_models',
  'operations',
  'corpora',
  'file_search_stores',
] as const;
export type RouteFamily = (typeof ROUTE_FAMILIES)[number];

/** A route every client may use, one in a project-wide family, or one the proxy does not forward. */
export type RouteAccess =
  | { readonly kind: 'open' }
  | { readonly kind: 'family'; readonly family: RouteFamily }
  | { readonly kind: 'unknown' };

const OPEN: RouteAccess = { kind: 'open' };
const UNKNOWN: RouteAccess = { kind: 'unknown' };
const family = (name: RouteFamily): RouteAccess => ({ kind: 'family', family: name });

/** OpenAI-compatible calls that create nothing in the key's project, by method. */
const OPENAI_OPEN: Record<string, RegExp> = {
  POST: /^(chat\/completions|completions|embeddings|images\/generations)$/,
  // Gemini lists its models as `models/<name>`, so a retrieve may carry that prefix.
  GET: /^models(\/(models\/)?[^/]+)?$/,
};
/** OpenAI-compatible families, by the path's first segment. */
const OPENAI_FAMILIES: Record<string, RouteFamily> = { files: 'files', batches: 'batches' };

/** Native methods on `models/{model}` that answer the request and keep nothing. */
const NATIVE_OPEN_METHODS =
  /^(generateContent|streamGenerateContent|countTokens|embedContent|batchEmbedContents)$/;
/** Native methods on `models/{model}` that create project-wide resources. */
const NATIVE_FAMILY_METHODS: Record<string, RouteFamily> = {
  batchGenerateContent: 'batches',
  asyncBatchEmbedContent: 'batches',
  predictLongRunning: 'operations',
};
/** Native collections, by the path's first segment (before any `/` or `:`). */
const NATIVE_FAMILIES: Record<string, RouteFamily> = {
  files: 'files',
  generatedFiles: 'files',
  cachedContents: 'cached_contents',
  batches: 'batches',
  tunedModels: 'tuned_models',
  operations: 'operations',
  corpora: 'corpora',
  fileSearchStores: 'file_search_stores',
};
/** `models/{model}`, then nothing, a `:method`, or a sub-collection. */
const NATIVE_MODEL = /^models\/[^/:]+(?::([^/]+)|\/(operations)(?:\/.*)?)?$/;

/** Access of a path under `/v1/` or `/v1beta/`; anything else is unknown. */
export function routeAccess(method: string, path: string): RouteAccess {
  if (path.startsWith('/v1/')) return openAiAccess(method, path.slice(4));
  if (path.startsWith('/v1beta/')) return nativeAccess(method, path.slice(8));
  return UNKNOWN;
}

/** Access of an OpenAI-compatible route; `rest` is the path after `/v1/`. */
export function openAiAccess(method: string, rest: string): RouteAccess {
  if (OPENAI_OPEN[method]?.test(rest)) return OPEN;
  const named = OPENAI_FAMILIES[/^[^/]*/.exec(rest)?.[0] ?? ''];
  return named === undefined ? UNKNOWN : family(named);
}

/** Access of a native route; `rest` is the path after `/v1beta/`. */
export function nativeAccess(method: string, rest: string): RouteAccess {
  if (rest === 'models') return method === 'GET' ? OPEN : UNKNOWN;
  const model = NATIVE_MODEL.exec(rest);
  if (model !== null) {
    const [, verb, sub] = model;
    if (sub !== undefined) return family('operations');
    if (verb === undefined) return method === 'GET' ? OPEN : UNKNOWN;
    const named = NATIVE_FAMILY_METHODS[verb];
    if (named !== undefined) return family(named);
    return method === 'POST' && NATIVE_OPEN_METHODS.test(verb) ? OPEN : UNKNOWN;
  }
  const named = NATIVE_FAMILIES[/^[^/:]*/.exec(rest)?.[0] ?? ''];
  return named === undefined ? UNKNOWN : family(named);
}

/** The 403 for a family the operator has not opted in. */
export function routeNotAllowed(name: RouteFamily): ProxyResponse {
  return openAiError(
    403,
    `This proxy does not forward "${name}" routes: they reach resources of the Google project behind a key ` +
      'that every client of this proxy shares. The operator can enable them with server.allow_route_families.',
    'invalid_request_error',
    'route_not_allowed',
  );
}

/** Query parameters forwarded on every route: the answer's format (`alt=sse`) and list paging. */
const QUERY_OPEN: ReadonlySet<string> = new Set(['alt', 'pageSize', 'pageToken']);
/** Further parameters of family routes (updates, filters, OpenAI-style paging), once opted in. */
const QUERY_FAMILY: ReadonlySet<string> = new Set([
  'updateMask',
  'filter',
  'limit',
  'after',
  'order',
  'purpose',
]);

/**
 * The client's query string reduced to the parameters Gemini needs to serve the request, each kept byte
 * for byte. Names are compared decoded, so a percent-encoded spelling is no way around it. Dropped among
 * others: Google's system parameters (`userProject` switches the project billed, `quotaUser`, `fields`,
 * `$.xgafv`, `prettyPrint`, `callback`, `access_token`) and `key`.
 */
export function forwardedQuery(query: string, familyRoute = false): string {
  if (query === '') return query;
  const kept = query.split('&').filter((part) => {
    const eq = part.indexOf('=');
    const name = safeDecode(eq === -1 ? part : part.slice(0, eq));
    return name !== undefined && (QUERY_OPEN.has(name) || (familyRoute && QUERY_FAMILY.has(name)));
  });
  return kept.join('&');
}
