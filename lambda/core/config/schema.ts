import { en } from 'zod/locales';
import * as z from 'zod/mini';
import { ROUTE_FAMILIES } from '../route-access.js';
import { parseProxyUrl, proxyUrlProblem } from '../upstream-proxy.js';
import { httpUrl, int, modelName, nonEmpty, nonNegative, positive, withDefault } from './fields.js';
import { limitsSchema } from './limits.js';

export type { GroupLimits, LimitValues } from './limits.js';

// zod/mini keeps the Lambda bundle small; English messages for the checks that don't carry their own.
z.config(en());

/** Gemini's OpenAI-compatible endpoint; `target_url` defaults to it. */
export const DEFAULT_TARGET_URL = 'https://generativelanguage.googleapis.com/v1beta/openai/';
/** Base of Gemini's native API (`/v1beta/models/...` is appended). */
export const DEFAULT_NATIVE_BASE_URL = 'https://generativelanguage.googleapis.com';

const nonEmptyKey = z.string('expected a key').check(z.trim(), z.minLength(1, 'expected a non-empty key'));

/**
 * A key is a string, or `{ key, project, disabled }`: keys of one Google Cloud project share its quota; a
 * key marked `disabled: true` stays configured but out of rotation (what `gemini-proxy keys disable` writes
 * to a local config without a shared table).
 */
const apiKeySchema = z.union(
  [
    nonEmptyKey,
    z.strictObject({
      key: nonEmptyKey,
      project: z.optional(nonEmpty('expected a project id')),
      disabled: z.optional(z.boolean('expected true or false')),
    }),
  ],
  'expected a key, or { key, project, disabled }',
);

/** An outbound proxy URL, parsed; the error says what is wrong without quoting it. */
function proxyUrl() {
  return z.pipe(
    z
      .string('expected a proxy URL')
      .check(
        z.refine((v) => proxyUrlProblem(v) === undefined, { error: (iss) => proxyUrlProblem(iss.input) }),
      ),
    z.transform((v: string) => parseProxyUrl(v, 'proxy_url')),
  );
}

export const groupSchema = z.strictObject({
  name: nonEmpty('expected a non-empty name'),
  api_keys: z
    .array(apiKeySchema, 'expected a list of keys')
    .check(z.minLength(1, 'expected at least 1 item')),
  /** Proactive quota: claimed before calling Gemini, shared by every instance with a shared store. */
  limits: z.optional(limitsSchema),
  /** OpenAI-compatible base; `/v1/<rest>` is forwarded to `<target_url><rest>`. */
  target_url: withDefault(
    z.pipe(
      httpUrl(),
      z.transform((u: string) => (u.endsWith('/') ? u : `${u}/`)),
    ),
    DEFAULT_TARGET_URL,
  ),
  /** Models routed to this group first; other models go to every group in order. */
  models: z.optional(z.array(modelName())),
  /** This group's outbound proxy (http, https, socks5, socks5h); `upstream.proxy_url` when unset. */
  proxy_url: z.optional(proxyUrl()),
});

const serverSchema = z
  .strictObject({
    host: withDefault(nonEmpty('expected a host'), '127.0.0.1'),
    port: withDefault(int(z.gte(0, 'expected 0-65535'), z.lte(65535, 'expected 0-65535')), 8081),
    /** Allows running with no `client_tokens`; only honoured on a loopback host. */
    allow_unauthenticated: withDefault(z.boolean('expected true or false'), false),
    /** Largest request body accepted, counted while reading. */
    max_body_bytes: withDefault(positive(), 10 * 1024 * 1024),
    /**
     * Route families reaching resources of a key's Google project (shared by every client of that key)
     * that are forwarded anyway; refused with 403 unless listed.
     */
    allow_route_families: withDefault(
      z.array(z.enum(ROUTE_FAMILIES, `expected one of ${ROUTE_FAMILIES.join(', ')}`), 'expected a list'),
      [],
    ),
    /** Time a connection has to send a request's headers, from its first byte (or from connecting). */
    header_timeout_ms: withDefault(positive(), 10_000),
    /** Time a connection has to send a whole request, headers and body; the answer is not bounded by it. */
    request_receive_timeout_ms: withDefault(positive(), 30_000),
    /** How long a keep-alive connection may sit idle between requests. */
    idle_timeout_ms: withDefault(positive(), 65_000),
    /** How long writes to a client that stopped reading may stay blocked before the connection is dropped. */
    write_stall_timeout_ms: withDefault(positive(), 60_000),
    /** Port of the token-less Prometheus `/metrics` listener (local server): absent, none; 0, any free port. */
    metrics_port: z.optional(int(z.gte(0, 'expected 0-65535'), z.lte(65535, 'expected 0-65535'))),
    /** Its address: loopback, or a private interface only Prometheus reaches. */
    metrics_host: withDefault(nonEmpty('expected a host'), '127.0.0.1'),
  })
  .check(
    z.refine((s) => s.header_timeout_ms <= s.request_receive_timeout_ms, {
      message: 'expected at most request_receive_timeout_ms',
      path: ['header_timeout_ms'],
    }),
  );

export const upstreamSchema = z.strictObject({
  /** Outbound proxy for every group without its own, and for the native API and the model list. */
  proxy_url: z.optional(proxyUrl()),
  native_base_url: withDefault(
    z.pipe(
      httpUrl(),
      z.transform((u: string) => u.replace(/\/+$/, '')),
    ),
    DEFAULT_NATIVE_BASE_URL,
  ),
  connect_timeout_ms: withDefault(positive(), 5_000),
  /** Time allowed between sending a request and Gemini's response headers (streamed and other calls). */
  first_byte_timeout_ms: withDefault(positive(), 60_000),
  /**
   * The same for a generation answered whole (not streamed): Gemini sends its headers only when the
   * answer is done, which takes minutes for thinking models on long prompts.
   */
  generation_first_byte_timeout_ms: withDefault(positive(), 300_000),
  /** Bound on a whole client request, attempts and waits included. */
  request_timeout_ms: withDefault(positive(), 600_000),
  /**
   * How often Gemini's model list is read again (`GET /v1beta/models`, in the background); models not on
   * it are answered 404 without a Gemini call or any state. 0: never read, every well-formed name is served.
   */
  model_list_ms: withDefault(nonNegative(), 3_600_000),
});

export const policySchema = z.strictObject({
  /** Extra tries on the same key after a 500/503/network error/first-byte timeout. */
  transient_retries: withDefault(int(z.gte(0, 'expected 0-5'), z.lte(5, 'expected 0-5')), 2),
  transient_retry_delay_ms: withDefault(nonNegative(), 250),
  /** Cooldown of a key×model once its transient retries are spent. */
  transient_cooldown_ms: withDefault(nonNegative(), 10_000),
  /** Cooldown after a 429 that names no delay and no daily quota. */
  default_quota_cooldown_ms: withDefault(positive(), 60_000),
  /** Upstream calls one client request may make, retries included. */
  max_attempts: withDefault(int(z.gte(1, 'expected 1-50'), z.lte(50, 'expected 1-50')), 10),
  /** When every key is cooling, wait for the soonest one if it frees within this bound (0: answer 429). */
  max_wait_ms: withDefault(nonNegative(), 0),
  /** Consecutive transient failures of one upstream target (across keys) that open its circuit; 0: never. */
  circuit_failure_threshold: withDefault(nonNegative(), 5),
  /** How long an open circuit refuses before letting probes through. */
  circuit_open_ms: withDefault(positive(), 30_000),
  /** Requests let through to test a half-open circuit. */
  circuit_half_open_probes: withDefault(positive(), 1),
  /** Keys scoring below this are passed over while a healthier usable key exists (0 turns it off). */
  /**
   * How long a key (its project) stays parked for a model Gemini reports with `limit: 0` (not in the
   * project's tier at all). Default: until the next Pacific midnight.
   */
  unavailable_park_ms: z.optional(positive()),
  /** How long a limit learned from Gemini's 429s is enforced after it was last reported. */
  learned_limit_ms: withDefault(nonNegative(), 86_400_000),
  health_floor: withDefault(
    z.number('expected a number').check(z.gte(0, 'expected 0 to 1'), z.lte(1, 'expected 0 to 1')),
    0.3,
  ),
});

export const stateSchema = z.strictObject({
  store: withDefault(z.enum(['memory', 'dynamodb'], 'expected "memory" or "dynamodb"'), 'memory'),
  /** DynamoDB table (store: dynamodb). */
  table: withDefault(z.string().check(z.minLength(3, 'expected a table name')), 'gemini-proxy-state'),
  /** DynamoDB endpoint for local engines; AWS's regional endpoint when absent. */
  endpoint: z.optional(httpUrl()),
  region: z.optional(nonEmpty('expected a region')),
  /** Create the table at start-up if it does not exist (local engines). */
  create_table: withDefault(z.boolean('expected true or false'), false),
  /** How long an instance trusts what it read of key state before reading again. */
  cache_ms: withDefault(nonNegative(), 1000),
  /** Shards of each group's rotation counter: each takes at most 1/shards of the writes. */
  rotation_shards: withDefault(int(z.gte(1, 'expected 1-100'), z.lte(100, 'expected 1-100')), 4),
  /**
   * How long one DynamoDB call may go unanswered before it counts as a failure. A call that only reads
   * or rotates is then served from local state; a budget claim keeps waiting (see `stateWaitAllowanceMs`).
   */
  timeout_ms: withDefault(positive(), 250),
  /** The same for the calls of a fresh instance until DynamoDB first answers (cold connection, credentials). */
  cold_timeout_ms: withDefault(positive(), 2000),
  /** Consecutive failures (errors, or `timeout_ms` without an answer) that make DynamoDB count as down. */
  outage_failures: withDefault(int(z.gte(1, 'expected 1-100'), z.lte(100, 'expected 1-100')), 3),
  /**
   * While DynamoDB is down, requests that need a budget claim (a group with `limits`, a client with
   * `rpm`) are served from this instance's own budgets (`serve_local`: N instances may grant up to N× a
   * limit) or refused with 503 `state_unavailable` (`refuse`). Other requests are served either way.
   */
  on_outage: withDefault(
    z.enum(['serve_local', 'refuse'], 'expected "serve_local" or "refuse"'),
    'serve_local',
  ),
  /** Once DynamoDB counts as down, how long to serve from local state before trying DynamoDB again. */
  retry_after_ms: withDefault(positive(), 5000),
});

const clientRpm = z.optional(positive());
const clientName = z.optional(
  z
    .string('expected a name')
    .check(z.regex(/^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/, 'expected 1-64 letters, digits, ., _, @ or -')),
);

/**
 * A client token: plain (local config), `{ token, rpm }`, or `{ sha256, rpm }` where only the token's
 * SHA-256 is stored (the Secrets Manager form: the proxy never needs the token itself).
 */
const clientTokenSchema = z.union(
  [
    nonEmpty('expected a non-empty token'),
    z.strictObject({
      token: nonEmpty('expected a non-empty token'),
      /** Who the client is, for logs and usage (never the token). */
      name: clientName,
      /** Requests per minute this client may make, across every instance. */
      rpm: clientRpm,
    }),
    z.strictObject({
      sha256: z.string().check(z.regex(/^[0-9a-f]{64}$/i, 'expected 64 hex digits')),
      name: clientName,
      rpm: clientRpm,
      /** When the token was made (ISO 8601), as the CLI records it. */
      created: z.optional(z.string('expected a date')),
    }),
  ],
  'expected a token, { token, name, rpm } or { sha256, name, rpm }',
);

/** `fallbacks`: for a model, the models that may serve its requests when none of its keys can. */
export const fallbacksSchema = z.record(
  modelName(),
  z.array(modelName(), 'expected a list of models'),
  'expected a mapping of model to models',
);

/** The whole proxy configuration, as read from YAML (snake_case, like the file). */
export const configSchema = z.strictObject({
  server: withDefault(serverSchema, serverSchema.parse({})),
  client_tokens: withDefault(z.array(clientTokenSchema), []),
  groups: z.array(groupSchema, 'expected a list of groups').check(z.minLength(1, 'expected at least 1 item')),
  upstream: withDefault(upstreamSchema, upstreamSchema.parse({})),
  policy: withDefault(policySchema, policySchema.parse({})),
  state: withDefault(stateSchema, stateSchema.parse({})),
  /**
   * Opt-in model fallbacks: when no key of any group can serve a model now, the request is served by the
   * next model of its list (in order). Never on a client error; a client opts out per request.
   */
  fallbacks: withDefault(fallbacksSchema, {}),
});

export type ProxyConfig = z.output<typeof configSchema>;
export type GroupConfig = z.output<typeof groupSchema>;
export type StateConfig = z.output<typeof stateSchema>;
