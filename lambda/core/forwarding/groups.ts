/** Key groups as the forwarder uses them, where their requests go, and the request each call sends. */
import { configuredKeys } from '../config/derived.js';
import type { GroupConfig, GroupLimits, LimitValues, ProxyConfig } from '../config/schema.js';
import { keyId } from '../credentials.js';
import { upstreamRequestHeaders } from '../headers.js';
import type { ProxyRequest, UpstreamRequest } from '../http.js';
import type { KeyRef, QuotaLimits } from '../key-state/port.js';
import { hasLimits } from '../key-state/quota.js';
import { normalizeModel } from '../routes.js';
import { describeProxy, type ProxyEndpoint } from '../upstream-proxy.js';

/** A configured group with its keys resolved: id → raw key, ids in rotation order. */
export interface KeyGroup {
  readonly name: string;
  readonly targetUrl: string;
  readonly models: ReadonlySet<string> | undefined;
  readonly keys: ReadonlyMap<string, string>;
  /** Keys in rotation order with their quota budgets. */
  readonly refs: readonly KeyRef[];
  readonly keyIds: readonly string[];
  /** The configured quota for a model (its own entry, else the group's default); undefined: none. */
  readonly limitsFor: (model: string) => QuotaLimits | undefined;
  /** The group's outbound proxy (its own, else `upstream.proxy_url`); undefined: direct. */
  readonly proxy: ProxyEndpoint | undefined;
}

/** Where a request goes at Gemini: the OpenAI-compatible API (below a group's `target_url`) or the native one. */
export type Target =
  | { readonly kind: 'openai'; readonly rest: string; readonly query: string }
  | { readonly kind: 'native'; readonly url: string; readonly query: string };

/** A request on its way to Gemini, as each of its calls sends it. */
export interface UpstreamCall {
  readonly request: ProxyRequest;
  readonly body: Uint8Array;
  readonly target: Target;
  /** A generation call, answered as a stream or whole; undefined for anything else (listing, embeddings…). */
  readonly generation: 'streamed' | 'whole' | undefined;
}

const BODYLESS = new Set(['GET', 'HEAD']);

/** Resolves a configured group's keys (each key once, by id) and budgets; keys marked `disabled` are left out. */
export function buildGroup(group: GroupConfig, upstream: ProxyConfig['upstream']): KeyGroup {
  const keys = new Map<string, string>();
  const refs: KeyRef[] = [];
  for (const { apiKey, project, disabled } of configuredKeys(group)) {
    const id = keyId(apiKey);
    if (disabled || keys.has(id)) continue;
    keys.set(id, apiKey);
    // Keys of one project share its quota; a key without a project is its own budget.
    refs.push({ keyId: id, budget: project === undefined ? `key:${id}` : `project:${project}` });
  }
  return {
    name: group.name,
    targetUrl: group.target_url,
    models: group.models === undefined ? undefined : new Set(group.models.map(normalizeModel)),
    keys,
    refs,
    keyIds: refs.map((r) => r.keyId),
    limitsFor: configuredLimits(group.limits),
    proxy: group.proxy_url ?? upstream.proxy_url,
  };
}

/**
 * A group's configured limits by model: a model's own entry, else `default`; none when nothing is set. A
 * window length set alone (`rpm_window_ms`) is kept: limits learned from Gemini are counted in it.
 */
function configuredLimits(limits: GroupLimits | undefined): (model: string) => QuotaLimits | undefined {
  if (limits === undefined) return () => undefined;
  const toQuota = (l: LimitValues): QuotaLimits | undefined => {
    const quota: QuotaLimits = { rpm: l.rpm, tpm: l.tpm, rpd: l.rpd, windowMs: l.rpm_window_ms };
    return l.rpm_window_ms !== undefined || hasLimits(quota) ? quota : undefined;
  };
  const fallback = toQuota(limits.default);
  const byModel = new Map(Object.entries(limits.models).map(([m, l]) => [normalizeModel(m), toQuota(l)]));
  return (model) => (byModel.has(model) ? byModel.get(model) : fallback);
}

/**
 * The upstream a group's request goes to, and the proxy it goes through: the circuit breaker's unit (a
 * failing proxy must not hold back a group that reaches the same URL directly or by another proxy).
 */
export function targetOf(target: Target, group: KeyGroup, upstream: ProxyConfig['upstream']): string {
  const url = target.kind === 'openai' ? group.targetUrl : upstream.native_base_url;
  return group.proxy === undefined ? url : `${url} via ${describeProxy(group.proxy)}`;
}

/** The request to Gemini for one call with one key of a group. */
export function upstreamRequest(
  call: UpstreamCall,
  group: KeyGroup,
  keyId: string,
  signal: AbortSignal,
  upstream: ProxyConfig['upstream'],
): UpstreamRequest {
  const { target, request, body } = call;
  const apiKey = group.keys.get(keyId)!;
  const headers = upstreamRequestHeaders(request.headers);
  let base: string;
  if (target.kind === 'openai') {
    base = `${group.targetUrl}${target.rest}`;
    headers.authorization = `Bearer ${apiKey}`;
  } else {
    base = target.url;
    headers['x-goog-api-key'] = apiKey;
  }
  const hasBody = !BODYLESS.has(request.method) && body.byteLength > 0;
  if (hasBody) headers['content-length'] = String(body.byteLength);
  return {
    url: new URL(target.query === '' ? base : `${base}?${target.query}`),
    method: request.method,
    headers,
    body: hasBody ? body : undefined,
    signal,
    connectTimeoutMs: upstream.connect_timeout_ms,
    proxy: group.proxy,
    // Gemini sends a whole answer's headers only once the answer is done: minutes for thinking models.
    firstByteTimeoutMs:
      call.generation === 'whole'
        ? upstream.generation_first_byte_timeout_ms
        : upstream.first_byte_timeout_ms,
  };
}
