import { readText } from './body.js';
import type { ProxyConfig } from './config/schema.js';
import type { UpstreamClient } from './http.js';
import type { Logger } from './logger.js';
import { canonicalModel } from './models.js';
import type { ProxyEndpoint } from './upstream-proxy.js';

export interface ModelCatalogOptions {
  readonly upstream: UpstreamClient;
  /** Base of Gemini's native API; the list is `GET <base>/v1beta/models`. */
  readonly baseUrl: string;
  /** How long a list read is trusted (0: the catalog never reads one and allows every name). */
  readonly refreshMs: number;
  readonly connectTimeoutMs: number;
  /** The outbound proxy the list is read through (`upstream.proxy_url`). @default direct */
  readonly proxy?: ProxyEndpoint | undefined;
  readonly firstByteTimeoutMs: number;
  readonly logger: Logger;
  readonly now: () => number;
}

/** Most models kept from a list; Gemini lists about a hundred. */
const MAX_MODELS = 2000;
/** Pages read at most (1,000 models each). */
const MAX_PAGES = 3;
/** Keys tried per read: one dead or rate-limited key must not leave the list unknown. */
const MAX_KEYS_TRIED = 3;
/** After a failed read, the next one waits this long (or the refresh interval, if shorter). */
const RETRY_AFTER_FAILURE_MS = 60_000;
/** Largest listing answer read. */
const MAX_LIST_BYTES = 4 * 1024 * 1024;

/**
 * The models Gemini serves, as this instance last read them: a model not on the list (nor named by the
 * configuration) is answered 404 without a Gemini call, so made-up names create no state (memory or table
 * items). The list is read in the background with any configured key, never while a request waits; until a
 * read has succeeded (or while reads fail and no list was ever had) every well-formed name is allowed — the
 * proxy fails open, and Gemini answers what it doesn't know. A list once read is kept when a later read
 * fails, and when the configuration changes: one catalog serves each configuration an instance builds.
 */
export class ModelCatalog {
  private listed: ReadonlySet<string> | undefined;
  /** When the next read is due. */
  private dueAt = 0;
  private reading: Promise<void> | undefined;
  /** Where the next read starts in the keys: reads that fail move on to other keys. */
  private nextKey = 0;

  constructor(private readonly options: ModelCatalogOptions) {}

  /** The catalog the configuration's `upstream` settings describe. */
  static of(
    settings: ProxyConfig['upstream'],
    deps: { upstream: UpstreamClient; logger: Logger; now?: (() => number) | undefined },
  ): ModelCatalog {
    return new ModelCatalog({
      upstream: deps.upstream,
      baseUrl: settings.native_base_url,
      refreshMs: settings.model_list_ms,
      connectTimeoutMs: settings.connect_timeout_ms,
      proxy: settings.proxy_url,
      firstByteTimeoutMs: settings.first_byte_timeout_ms,
      logger: deps.logger,
      now: deps.now ?? Date.now,
    });
  }

  /** False only when the list is known and does not have the model. */
  allows(model: string): boolean {
    return this.listed === undefined || this.listed.has(model);
  }

  /** Starts a background read of the list if one is due; `keys` are the raw keys it may use. */
  refresh(keys: readonly string[]): void {
    if (this.options.refreshMs === 0 || keys.length === 0) return;
    if (this.reading !== undefined || this.options.now() < this.dueAt) return;
    const tried = Array.from(
      { length: Math.min(MAX_KEYS_TRIED, keys.length) },
      (_, i) => keys[(this.nextKey + i) % keys.length]!,
    );
    this.nextKey = (this.nextKey + tried.length) % keys.length;
    this.reading = this.read(tried).finally(() => {
      this.reading = undefined;
    });
  }

  /** Resolves once a read in flight (if any) has ended; for tests and shutdown. */
  async settled(): Promise<void> {
    await this.reading;
  }

  private async read(keys: readonly string[]): Promise<void> {
    for (const key of keys) {
      const models = await this.list(key).catch(() => undefined);
      if (models !== undefined) {
        this.listed = models;
        this.dueAt = this.options.now() + this.options.refreshMs;
        this.options.logger.debug('model list read', { models: models.size });
        return;
      }
    }
    this.dueAt = this.options.now() + Math.min(this.options.refreshMs, RETRY_AFTER_FAILURE_MS);
    this.options.logger.warn('model list unavailable; serving any well-formed model name', {
      known: this.listed !== undefined,
    });
  }

  /** The list as one key sees it, or undefined when Gemini did not answer it. */
  private async list(key: string): Promise<Set<string> | undefined> {
    const models = new Set<string>();
    let pageToken: string | undefined;
    for (let page = 0; page < MAX_PAGES; page++) {
      const url = new URL(`${this.options.baseUrl}/v1beta/models`);
      url.searchParams.set('pageSize', '1000');
      if (pageToken !== undefined) url.searchParams.set('pageToken', pageToken);
      const response = await this.options.upstream.send({
        url,
        method: 'GET',
        headers: { 'x-goog-api-key': key, accept: 'application/json' },
        body: undefined,
        signal: AbortSignal.timeout(this.options.connectTimeoutMs + this.options.firstByteTimeoutMs),
        connectTimeoutMs: this.options.connectTimeoutMs,
        firstByteTimeoutMs: this.options.firstByteTimeoutMs,
        proxy: this.options.proxy,
      });
      const text = await readText(response.body, MAX_LIST_BYTES);
      if (response.status !== 200 || text === undefined) return undefined;
      const body = JSON.parse(text) as { models?: unknown; nextPageToken?: unknown };
      if (!Array.isArray(body.models)) return undefined;
      for (const entry of body.models as Array<{ name?: unknown }>) {
        if (typeof entry?.name !== 'string' || models.size >= MAX_MODELS) continue;
        const check = canonicalModel(entry.name);
        if (check.ok) models.add(check.model);
      }
      pageToken =
        typeof body.nextPageToken === 'string' && body.nextPageToken !== '' ? body.nextPageToken : undefined;
      if (pageToken === undefined) break;
    }
    return models.size > 0 ? models : undefined;
  }
}
