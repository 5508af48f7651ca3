import { BodyTooLargeError, readBody } from './body.js';
import { configuredKeys, configuredTokens } from './config/derived.js';
import type { ProxyConfig } from './config/schema.js';
import { Scrubber, TokenVerifier } from './credentials.js';
import { type DetailedHealth, detailedHealth } from './detailed-health.js';
import { type FallbackModel, fallbackChains, fallbacksOff } from './forwarding/fallbacks.js';
import { Forwarder } from './forwarding/forwarder.js';
import { buildGroup, type KeyGroup, type Target } from './forwarding/groups.js';
import { RequestLog } from './forwarding/request-log.js';
import { headerValue } from './headers.js';
import type { ProxyRequest, ProxyResponse, UpstreamClient } from './http.js';
import { InstanceHealth } from './instance-health.js';
import type { KeyStateStore } from './key-state/port.js';
import type { Logger } from './logger.js';
import { type MetricsSink, noMetrics } from './metrics.js';
import { ModelCatalog } from './model-catalog.js';
import { openAiError } from './openai-errors.js';
import { requestModel } from './request-model.js';
import { forwardedQuery, type RouteFamily, routeAccess, routeNotAllowed } from './route-access.js';
import { matchRoute, type Route, stripKeyParam } from './routes.js';
import { StateWrites } from './state-writes.js';
import { estimateInputTokens } from './token-estimate.js';

export interface ProxyDeps {
  readonly config: ProxyConfig;
  readonly store: KeyStateStore;
  readonly upstream: UpstreamClient;
  readonly logger: Logger;
  /** Clock in epoch ms; injectable for tests. */
  readonly now?: () => number;
  /** Where request metrics go. @default none */
  readonly metrics?: MetricsSink;
  /**
   * What the instance learns of Gemini (circuits, health scores). Give the same one to each proxy an
   * instance builds, so a new configuration keeps it. @default a new one
   */
  readonly health?: InstanceHealth;
  /** Pending state writes, likewise shared across configurations. @default a new one */
  readonly writes?: StateWrites;
  /**
   * The models Gemini lists, likewise: a new configuration need not read the list again. Built from the
   * `upstream` settings, which must be the same for each proxy it is given to. @default a new one
   */
  readonly catalog?: ModelCatalog;
}

/** The client's proxy token, from `Authorization: Bearer`, `x-goog-api-key` or `?key=`. */
function presentedToken(request: ProxyRequest, queryKey: string | undefined): string | undefined {
  const auth = headerValue(request.headers, 'authorization');
  if (auth !== undefined) {
    const m = /^Bearer\s+(.+)$/i.exec(auth.trim());
    if (m?.[1] !== undefined) return m[1].trim();
  }
  return headerValue(request.headers, 'x-goog-api-key') ?? queryKey;
}

/**
 * The Gemini-aware proxy core: authenticates, routes, picks keys, forwards and learns.
 * Knows nothing of node:http or Lambda; each entry point translates to and from {@link ProxyRequest}.
 */
export class GeminiProxy {
  private readonly config: ProxyConfig;
  private readonly store: KeyStateStore;
  private readonly logger: Logger;
  private readonly now: () => number;
  private readonly tokens: TokenVerifier;
  private readonly groups: readonly KeyGroup[];
  private readonly forwarder: Forwarder;
  private readonly requests: RequestLog;
  private readonly health: InstanceHealth;
  private readonly writes: StateWrites;
  /** Project-wide route families the operator opted in to (`server.allow_route_families`). */
  private readonly routeFamilies: ReadonlySet<RouteFamily>;
  /** What Gemini serves (read in the background); a model neither on it nor named by a group is answered 404. */
  private readonly catalog: ModelCatalog;
  /** Models the groups name (`models`): known whatever Gemini's list says. */
  private readonly namedModels: ReadonlySet<string>;
  /** Keys the model list may be read with: every configured key, in configuration order. */
  private readonly listingKeys: readonly string[];
  /** Models to serve a request with when no key can serve its own (`fallbacks`), by model. */
  private readonly fallbacks: ReadonlyMap<string, readonly string[]>;

  constructor(deps: ProxyDeps) {
    this.config = deps.config;
    this.store = deps.store;
    this.logger = deps.logger;
    this.now = deps.now ?? Date.now;
    this.routeFamilies = new Set(deps.config.server.allow_route_families);
    const tokens = configuredTokens(deps.config);
    this.tokens = new TokenVerifier(tokens);
    this.groups = deps.config.groups.map((g) => buildGroup(g, deps.config.upstream));
    const secrets = [
      ...deps.config.groups.flatMap((g) => configuredKeys(g).map((k) => k.apiKey)),
      ...tokens.flatMap((t) => (t.token === undefined ? [] : [t.token])),
    ];
    this.listingKeys = this.groups.flatMap((g) => [...g.keys.values()]);
    this.namedModels = new Set(this.groups.flatMap((g) => [...(g.models ?? [])]));
    this.fallbacks = fallbackChains(deps.config.fallbacks);
    this.catalog =
      deps.catalog ??
      ModelCatalog.of(deps.config.upstream, { upstream: deps.upstream, logger: deps.logger, now: this.now });
    this.health = deps.health ?? new InstanceHealth(deps.config.policy, this.now);
    this.writes = deps.writes ?? new StateWrites(deps.store, deps.logger);
    this.requests = new RequestLog({
      logger: deps.logger,
      metrics: deps.metrics ?? noMetrics,
      now: this.now,
      openCircuits: () => this.health.openCircuits(),
    });
    this.forwarder = new Forwarder({
      config: deps.config,
      store: deps.store,
      upstream: deps.upstream,
      logger: deps.logger,
      now: this.now,
      scrubber: new Scrubber(secrets),
      health: this.health,
      writes: this.writes,
      requests: this.requests,
    });
  }

  /** Answers one request. Never throws: every failure becomes an OpenAI-shaped error response. */
  async handle(request: ProxyRequest): Promise<ProxyResponse> {
    const started = this.now();
    let response: ProxyResponse;
    try {
      response = await this.route(request, matchRoute(request.method, request.path), started);
    } catch (err) {
      this.logger.error('request failed', {
        requestId: request.requestId,
        error: err instanceof Error ? err.name : 'unknown',
      });
      response = openAiError(
        500,
        'The proxy failed to handle this request.',
        'server_error',
        'internal_error',
      );
    }
    response.headers['x-request-id'] = request.requestId;
    return response;
  }

  /** The pool as `/health/detailed` shows it: each group's keys and counts by state, and the circuits. */
  describe(): Promise<DetailedHealth> {
    return detailedHealth(this.groups, this.store, this.health, this.now());
  }

  /** Resolves once every state write started so far has settled (entries await this before ending). */
  settle(): Promise<void> {
    return this.writes.settle();
  }

  /** Logs a request refused before any Gemini call and answers it as the client's error. */
  private refuse(
    request: ProxyRequest,
    started: number,
    status: number,
    message: string,
    code: string,
  ): ProxyResponse {
    this.requests.refused(request, started, status);
    return openAiError(status, message, 'invalid_request_error', code);
  }

  private async route(request: ProxyRequest, route: Route, started: number): Promise<ProxyResponse> {
    if (route.kind === 'health') return json(200, { status: 'ok' });
    // Only an allow-list goes to Gemini; a route it doesn't know is answered like any unknown path.
    const access =
      route.kind === 'openai' || route.kind === 'native'
        ? routeAccess(request.method, request.path)
        : undefined;
    if (route.kind === 'not_found' || access?.kind === 'unknown') {
      return this.refuse(
        request,
        started,
        404,
        `No route for ${request.method} ${request.path}.`,
        'not_found',
      );
    }
    const { query: clientQuery, key: queryKey } = stripKeyParam(request.query);
    const client = this.tokens.enabled ? this.tokens.verify(presentedToken(request, queryKey)) : undefined;
    if (this.tokens.enabled && client === undefined) {
      const message = 'Missing or invalid proxy token. Send it as "Authorization: Bearer <token>".';
      return this.refuse(request, started, 401, message, 'invalid_api_key');
    }
    if (route.kind === 'health_detailed') {
      return json(200, await this.describe());
    }
    // Refused after the token check: a caller without a token learns nothing but 401.
    if (access?.kind === 'family' && !this.routeFamilies.has(access.family)) {
      this.requests.refused(request, started, 403);
      return routeNotAllowed(access.family);
    }
    const query = forwardedQuery(clientQuery, access?.kind === 'family');

    let body: Uint8Array;
    try {
      body = await readBody(request.body, this.config.server.max_body_bytes);
    } catch (err) {
      if (request.signal.aborted) {
        const message = 'The client went away while sending the request.';
        return this.refuse(request, started, 499, message, 'cancelled');
      }
      if (!(err instanceof BodyTooLargeError)) throw err;
      this.requests.refused(request, started, 413);
      return openAiError(
        413,
        `Request body is larger than ${err.limit} bytes.`,
        'invalid_request_error',
        'request_too_large',
        { connection: 'close' },
      );
    }

    // The model keys cooldowns and budgets: it must be exactly, and only, what Gemini will serve.
    const read = requestModel(route, headerValue(request.headers, 'content-type'), body);
    if (!read.ok) {
      this.requests.refused(request, started, read.status);
      return openAiError(read.status, read.message, 'invalid_request_error', read.code);
    }
    const { model, generation } = read;
    this.catalog.refresh(this.listingKeys);
    if (model !== '' && !this.knows(model)) {
      // A name Gemini doesn't list: no Gemini call, no state (so made-up names can't grow any).
      this.requests.refused(request, started, 404);
      return openAiError(
        404,
        `The model \`${model}\` does not exist or you do not have access to it.`,
        'invalid_request_error',
        'model_not_found',
      );
    }

    const target: Target =
      route.kind === 'openai'
        ? { kind: 'openai', rest: route.rest, query }
        : { kind: 'native', url: `${this.config.upstream.native_base_url}${request.path}`, query };
    const job = {
      request,
      body,
      model,
      target,
      groups: this.groupsFor(model),
      started,
      client: client?.rpm === undefined ? undefined : { clientId: client.clientId, rpm: client.rpm },
      generation,
      // Input tokens, estimated: claimed where a token budget (configured or learned) applies.
      tokens: generation === undefined ? 0 : estimateInputTokens(route, body),
    };
    // Only a generation moves to another model: another model's embedding (another vector space), token
    // count or description would be a wrong answer, not a fallback.
    return this.forwarder.forward(job, generation === undefined ? [] : this.fallbacksFor(model, request));
  }

  /** A model Gemini lists (or may: the list isn't read yet) or a group names. */
  private knows(model: string): boolean {
    return this.namedModels.has(model) || this.catalog.allows(model);
  }

  /** The models that may serve the request if no key can serve its own: known ones, unless the client opts out. */
  private fallbacksFor(model: string, request: ProxyRequest): FallbackModel[] {
    const chain = this.fallbacks.get(model);
    if (chain === undefined || fallbacksOff(request.headers)) return [];
    return chain.filter((m) => this.knows(m)).map((m) => ({ model: m, groups: this.groupsFor(m) }));
  }

  /** Groups that list the model; if none does, every group in order. */
  private groupsFor(model: string): readonly KeyGroup[] {
    if (model === '') return this.groups;
    const listed = this.groups.filter((g) => g.models?.has(model));
    return listed.length > 0 ? listed : this.groups;
  }
}

function json(status: number, value: unknown): ProxyResponse {
  return { status, headers: { 'content-type': 'application/json' }, body: JSON.stringify(value) };
}
