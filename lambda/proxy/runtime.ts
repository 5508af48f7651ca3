import type { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type * as z from 'zod/mini';
import { EmfMetrics } from '../adapters/emf-metrics.js';
import { LambdaInstance, lambdaState, required } from '../adapters/lambda-env.js';
import type { SecretCache } from '../adapters/secret-cache.js';
import { createUsageLedger } from '../adapters/state/create-state-store.js';
import { ConfigError, parseConfig, parseStateConfig } from '../core/config/parse.js';
import { keysSecretSchema, tokensSecretSchema } from '../core/config/secrets.js';
import type { ProxyRequest, ProxyResponse } from '../core/http.js';
import { InstanceHealth } from '../core/instance-health.js';
import type { KeyStateStore } from '../core/key-state/port.js';
import type { Logger } from '../core/logger.js';
import type { MetricsSink } from '../core/metrics.js';
import { ModelCatalog } from '../core/model-catalog.js';
import { openAiError } from '../core/openai-errors.js';
import { GeminiProxy } from '../core/proxy.js';
import { StateWrites } from '../core/state-writes.js';
import type { UsageLedger } from '../core/usage-ledger.js';

/** Every environment variable the proxy function reads; the stack sets exactly these (tests hold both to it). */
export const PROXY_FUNCTION_ENV = [
  'TABLE_NAME',
  'KEYS_SECRET_ID',
  'TOKENS_SECRET_ID',
  'SECRET_CACHE_MS',
  'LOG_LEVEL',
  'PROXY_SETTINGS',
  'METRICS_NAMESPACE',
] as const;

export type ProxyFunctionEnv = Partial<Record<(typeof PROXY_FUNCTION_ENV)[number], string>>;

type Current =
  | { readonly kind: 'ready'; readonly proxy: GeminiProxy }
  /** `emptied`: the secrets are valid but hold no keys or no tokens (placeholders, or revoked). */
  | { readonly kind: 'unavailable'; readonly message: string; readonly emptied?: boolean };

/**
 * Everything one Lambda instance keeps between invocations: the state store, the upstream client, the
 * two cached secrets and the proxy built from them (rebuilt when a secret changes), and what outlives
 * any one configuration: circuits and health scores, the model list, and the state writes in flight.
 */
export class ProxyRuntime extends LambdaInstance {
  private readonly tokens: SecretCache;
  private built: { keys: string; tokens: string; proxy: GeminiProxy } | undefined;
  /** Secret texts already found invalid: not parsed again until one of them changes. */
  private rejected: { keys: string; tokens: string; result: Current } | undefined;
  private lastProblem: string | undefined;
  private health: InstanceHealth | undefined;
  private writes: StateWrites | undefined;
  private catalog: ModelCatalog | undefined;
  private readonly metrics: MetricsSink;
  /** Usage counted by every configuration this instance builds; flushed with the store. */
  private readonly usage: UsageLedger;

  constructor(
    env: ProxyFunctionEnv,
    options: {
      logger?: Logger;
      secrets?: SecretsManagerClient;
      store?: KeyStateStore;
      /** @default the DynamoDB ledger on TABLE_NAME */
      usage?: UsageLedger;
    } = {},
  ) {
    super(env, { ...options, secretTimeoutMs: 3000, secretMaxAgeMs: Number(env.SECRET_CACHE_MS ?? 60_000) });
    this.tokens = this.secret(required(env, 'TOKENS_SECRET_ID'));
    this.metrics = new EmfMetrics(this.metricsNamespace);
    this.usage =
      options.usage ??
      createUsageLedger(parseStateConfig(lambdaState(this.settings, this.table)), this.logger);
  }

  /** Answers a request with the proxy built from the current secrets, or a clear 503 while there is none. */
  async handle(request: ProxyRequest): Promise<ProxyResponse> {
    const current = await this.current();
    if (current.kind === 'ready') return current.proxy.handle(request);
    const response =
      request.path === '/health'
        ? {
            status: 503,
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ status: 'unconfigured' }),
          }
        : openAiError(503, current.message, 'server_error', 'proxy_not_configured');
    response.headers['x-request-id'] = request.requestId;
    return response;
  }

  /** Awaits every state write started so far and flushes buffered counters and usage (before a stream ends). */
  async settle(): Promise<void> {
    await this.writes?.settle();
    await Promise.all([this.store.then((store) => store.flush()), this.usage.flush()]);
  }

  private async current(): Promise<Current> {
    const [keys, tokens] = await Promise.all([this.keys.get(), this.tokens.get()]);
    if (keys === undefined || tokens === undefined) {
      return this.built !== undefined
        ? { kind: 'ready', proxy: this.built.proxy }
        : { kind: 'unavailable', message: 'The proxy could not read its secrets yet; try again shortly.' };
    }
    if (this.built === undefined || this.built.keys !== keys || this.built.tokens !== tokens) {
      const known = this.rejected?.keys === keys && this.rejected.tokens === tokens;
      const result = known ? this.rejected!.result : await this.build(keys, tokens);
      this.rejected = result.kind === 'ready' ? undefined : { keys, tokens, result };
      if (result.kind === 'ready') {
        this.built = { keys, tokens, proxy: result.proxy };
        this.lastProblem = undefined;
      } else if (result.emptied) {
        // The operator emptied a secret (e.g. revoked every token): stop serving, don't keep the old ones.
        if (this.built !== undefined)
          this.logger.warn('secrets emptied; refusing requests until they are filled');
        this.built = undefined;
        return result;
      } else if (this.built === undefined) {
        return result;
      }
      // A malformed edit keeps the last good configuration serving (the problem was logged).
    }
    return { kind: 'ready', proxy: this.built.proxy };
  }

  private async build(keysText: string, tokensText: string): Promise<Current> {
    const keys = parseSecret(keysText, keysSecretSchema, '{"groups":[…]}');
    const tokens = parseSecret(tokensText, tokensSecretSchema, '{"tokens":[{"sha256":"…","rpm":…}]}');
    let problem: string | undefined;
    if (typeof keys === 'string') problem = `keys secret: ${keys}`;
    else if (typeof tokens === 'string') problem = `client tokens secret: ${tokens}`;
    if (problem === undefined && typeof keys !== 'string' && typeof tokens !== 'string') {
      if (keys.groups.length === 0 || tokens.tokens.length === 0) {
        return {
          kind: 'unavailable',
          emptied: true,
          message:
            'The proxy is deployed but not configured yet: put Gemini keys and client token hashes in its secrets (see README, "Deploy").',
        };
      }
      try {
        const config = parseConfig({
          ...this.settings,
          client_tokens: tokens.tokens,
          groups: keys.groups,
          state: lambdaState(this.settings, this.table),
        });
        const store = await this.store;
        // The policy and upstream settings come from the stack's settings, not the secrets: the same for every build.
        this.health ??= new InstanceHealth(config.policy);
        this.writes ??= new StateWrites(store, this.logger);
        this.catalog ??= ModelCatalog.of(config.upstream, { upstream: this.upstream, logger: this.logger });
        return {
          kind: 'ready',
          proxy: new GeminiProxy({
            config,
            store,
            upstream: this.upstream,
            logger: this.logger,
            metrics: this.metrics,
            health: this.health,
            writes: this.writes,
            catalog: this.catalog,
            usage: this.usage,
          }),
        };
      } catch (err) {
        // ConfigError messages name fields, never values.
        problem = err instanceof ConfigError ? err.message : 'invalid configuration';
      }
    }
    if (problem !== this.lastProblem) {
      this.lastProblem = problem;
      this.logger.error('secret rejected; keeping the last good configuration', { problem });
    }
    return {
      kind: 'unavailable',
      message: 'The proxy configuration in its secrets is invalid; see the logs.',
    };
  }
}

/** Parses a secret as JSON of a shape; returns a message (never quoting the content) when it isn't. */
function parseSecret<T>(text: string, schema: z.ZodMiniType<T>, shape: string): T | string {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return 'not valid JSON';
  }
  const result = schema.safeParse(value);
  return result.success ? result.data : `expected ${shape}`;
}
