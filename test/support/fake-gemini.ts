// A fake Google Gemini API (OpenAI-compatible and native surfaces) on 127.0.0.1 for proxy tests.
// Error shapes follow /work/shared/FIELD-NOTES.md "Gemini API". Node built-ins only; never logs.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  countInputTokens,
  type PlanUsage,
  type QuotaPlan,
  QuotaPlanner,
  type QuotaRefusal,
} from './fake-gemini-plan.js';

export type { ModelQuota, PlanUsage, QuotaPlan, QuotaRefusal } from './fake-gemini-plan.js';

export type DeadReason =
  | 'API_KEY_INVALID'
  | 'CONSUMER_SUSPENDED'
  | 'LEAKED'
  | 'API_KEY_SERVICE_BLOCKED'
  | 'SERVICE_DISABLED';
export interface RecordedCall {
  key: string | undefined;
  keyInQuery: boolean;
  method: string;
  path: string;
  query: string;
  model: string | undefined;
  stream: boolean;
  headers: Record<string, string | string[] | undefined>;
  status: number; // 0 while unanswered (e.g. hung or destroyed mid-stream before headers)
}
/**
 * A per-key request quota (the older, simpler tool; `setPlan` models Gemini's own quotas). It models a
 * quota that gets spent: `limit: 0` refuses every call, and its 429 then states no limit (a stated
 * `limit: 0` would say the model is not in the tier, which the plan models).
 */
export interface QuotaRule {
  limit: number;
  windowMs: number;
  kind?: 'minute' | 'day';
  model?: string;
  retryDelay?: string;
  omitDetails?: boolean;
  /**
   * Name the limit in the message (`limit: N`), as Gemini does. Off by default for these per-key rules: a
   * rule's window is the test's, not Gemini's minute, so a proxy learning it would hold the key to N a
   * minute (and `limit: 0` would park it as not in the tier). The quota plan (`setPlan`) always names them.
   */
  reportLimit?: boolean;
}
export interface ScriptedResponse {
  status: number;
  /** Sent as JSON (ignored when `raw` is given). */
  body?: unknown;
  arrayWrapped?: boolean;
  /** Sent byte for byte instead of JSON (text, HTML, '' for an empty body), with `headers` only. */
  raw?: string;
  headers?: Record<string, string>;
}
export interface FakeGeminiOptions {
  keys: string[];
  streamChunks?: number;
  streamChunkDelayMs?: number;
  /**
   * Delay before answering. A request header `x-fake-delay-ms` overrides it per request, but the proxy
   * does not forward that header: tests through the proxy set this option (or `modelDelayMs`) instead.
   */
  responseDelayMs?: number;
  /** Delay before answering a call that names one of these models (overrides `responseDelayMs`). */
  modelDelayMs?: Record<string, number>;
  /** Extra headers on every answer that is not scripted (e.g. CORS headers, as Google sends them). */
  responseHeaders?: Record<string, string> | undefined;
}
export interface FakeGemini {
  readonly url: string;
  readonly openAiBase: string;
  readonly calls: RecordedCall[];
  setQuota(key: string, rule: QuotaRule): void;
  /**
   * Gemini's own quotas, per project × model (see QuotaPlan). Replaces the plan, keeping the counts of
   * the current windows; `reset()` clears it. Counts generation and embedding calls, not countTokens.
   */
  setPlan(plan: QuotaPlan): void;
  /** One entry per 429 the plan produced. */
  readonly quotaRefusals: QuotaRefusal[];
  /** The plan's counts for `project` (a key not in a project is its own) × bare `model`, now. */
  usageOf(project: string, model: string): PlanUsage;
  killKey(key: string, reason: DeadReason): void;
  failNext(key: string, count: number, status?: number): void;
  respondNext(key: string | '*', response: ScriptedResponse): void;
  /** Every request whose body contains `marker` fails with `status` (a Gemini error), on every key. */
  failWhenBodyContains(marker: string, status?: number): void;
  failMidStream(key: string): void;
  hangNext(key: string): void;
  readonly aborted: number;
  options: FakeGeminiOptions;
  callsFor(key: string): RecordedCall[];
  reset(): void;
  close(): Promise<void>;
}

const COMPAT_PREFIX = '/v1beta/openai/';
const NATIVE_MODEL_PATH =
  /^\/v1beta\/models\/([^/:]+):(generateContent|streamGenerateContent|countTokens|embedContent)$/;
const MODELS = ['gemini-2.5-flash', 'gemini-2.5-pro'];
const REPLY = 'Hello from fake Gemini';
const INVALID_JSON = Symbol('invalid-json');

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const bareModel = (model: string) => model.replace(/^models\//, '');
const vector = (text: string) =>
  Array.from({ length: 8 }, (_, i) => ((text.length * 7 + i * 13) % 100) / 100);
const chunkText = (i: number) => ['Hello', ' from', ' fake', ' Gemini'][i] ?? ` #${i}`;

function geminiError(code: number, status: string, message: string, details?: unknown[]) {
  return { error: details ? { code, message, status, details } : { code, message, status } };
}

const ERROR_INFO = 'type.googleapis.com/google.rpc.ErrorInfo';
const metadata = { service: 'generativelanguage.googleapis.com' };
const errorInfo = (reason: string) => [{ '@type': ERROR_INFO, reason, domain: 'googleapis.com', metadata }];

const DEAD_MESSAGES: Record<DeadReason, (key: string) => string> = {
  API_KEY_INVALID: () => 'API key not valid. Please pass a valid API key.',
  CONSUMER_SUSPENDED: (key) => `Permission denied: Consumer 'api_key:${key}' has been suspended.`,
  LEAKED: () => 'Your API key was reported as leaked. Please use another API key.',
  API_KEY_SERVICE_BLOCKED: () => 'Requests to this API generativelanguage.googleapis.com are blocked.',
  SERVICE_DISABLED: () =>
    'Generative Language API has not been used in project 123456789 before or it is disabled.',
};
function deadKeyError(reason: DeadReason, key: string): [number, unknown] {
  const code = reason === 'API_KEY_INVALID' ? 400 : 403;
  const status = code === 400 ? 'INVALID_ARGUMENT' : 'PERMISSION_DENIED';
  const details = reason === 'LEAKED' ? undefined : errorInfo(reason); // the leaked-key 403 has no details
  return [code, geminiError(code, status, DEAD_MESSAGES[reason](key), details)];
}

const TRANSIENT: Record<number, [string, string]> = {
  429: ['RESOURCE_EXHAUSTED', 'Resource has been exhausted (e.g. check quota).'],
  500: [
    'INTERNAL',
    'An internal error has occurred. Please retry or report in https://developers.generativeai.google',
  ],
  503: ['UNAVAILABLE', 'The model is overloaded. Please try again later.'],
  504: ['DEADLINE_EXCEEDED', 'Deadline expired before operation could complete.'],
};
function transientError(code: number) {
  const [status, message] = TRANSIENT[code] ?? ['UNKNOWN', `Fake upstream failure (${code}).`];
  return geminiError(code, status, message);
}

function quotaError(rule: QuotaRule, model: string, msLeft: number) {
  if (rule.omitDetails) return transientError(429);
  const retryDelay = rule.retryDelay ?? `${(Math.max(1, msLeft) / 1000).toFixed(3)}s`;
  const metric = 'generativelanguage.googleapis.com/generate_content_free_tier_requests';
  const quotaId = `GenerateRequestsPer${rule.kind === 'day' ? 'Day' : 'Minute'}PerProjectPerModel-FreeTier`;
  const message =
    'You exceeded your current quota, please check your plan and billing details. For more information on this ' +
    'error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.\n' +
    `* Quota exceeded for metric: ${metric}${rule.reportLimit ? `, limit: ${rule.limit}` : ''}, model: ${model}\nPlease retry in ${retryDelay}.`;
  return geminiError(429, 'RESOURCE_EXHAUSTED', message, [
    {
      '@type': 'type.googleapis.com/google.rpc.QuotaFailure',
      violations: [{ quotaMetric: metric, quotaId, quotaDimensions: { location: 'global', model } }],
    },
    { '@type': 'type.googleapis.com/google.rpc.RetryInfo', retryDelay },
  ]);
}

const notFound = (message = 'Requested entity was not found.') => geminiError(404, 'NOT_FOUND', message);
const badRequest = (field: string) =>
  geminiError(400, 'INVALID_ARGUMENT', `Invalid JSON payload received. Missing field "${field}".`);

async function readBody(req: IncomingMessage): Promise<string> {
  const parts: Buffer[] = [];
  for await (const part of req) parts.push(part as Buffer);
  return Buffer.concat(parts).toString('utf8');
}

function parseJson(raw: string): unknown {
  if (raw === '') return undefined;
  try {
    return JSON.parse(raw) as unknown;
  } catch {
    return INVALID_JSON;
  }
}

/** Per-key one-shot counters (hangNext, failMidStream). `take` consumes one if available. */
const bump = (counters: Map<string, number>, key: string) => counters.set(key, (counters.get(key) ?? 0) + 1);
function take(counters: Map<string, number>, key: string): boolean {
  const n = counters.get(key) ?? 0;
  if (n > 0) counters.set(key, n - 1);
  return n > 0;
}

interface QuotaState {
  rule: QuotaRule;
  windows: Map<string, { start: number; count: number }>; // by model
}

export async function startFakeGemini(initial: FakeGeminiOptions): Promise<FakeGemini> {
  const options: FakeGeminiOptions = { ...initial, keys: [...initial.keys] };
  const calls: RecordedCall[] = [];
  const quotas = new Map<string, QuotaState[]>();
  const planner = new QuotaPlanner();
  const deadKeys = new Map<string, DeadReason>();
  const failures = new Map<string, { remaining: number; status: number }>();
  const scripted = new Map<string, ScriptedResponse[]>();
  const poisons = new Map<string, number>();
  const midStream = new Map<string, number>();
  const hangs = new Map<string, number>();
  let aborted = 0;
  let closing = false;
  let seq = 0;

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const path = url.pathname;
    const compat = path.startsWith(COMPAT_PREFIX);
    const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    const goog = req.headers['x-goog-api-key'];
    const headerKey = compat ? bearer : typeof goog === 'string' ? goog : undefined;
    const key = headerKey ?? url.searchParams.get('key') ?? undefined;
    let selfDestroyed = false;
    res.on('close', () => {
      if (!res.writableFinished && !selfDestroyed && !closing) aborted++;
    });

    const raw = await readBody(req);
    const body = parseJson(raw);
    const native = NATIVE_MODEL_PATH.exec(path);
    const nativeMethod = native?.[2];
    const bodyModel = isRecord(body) && typeof body.model === 'string' ? body.model : undefined;
    const model = compat ? bodyModel : native ? decodeURIComponent(native[1] ?? '') : undefined;
    const bodyStream = isRecord(body) && body.stream === true;
    const streamRoute = (compat && bodyStream) || nativeMethod === 'streamGenerateContent';
    const stream = bodyStream || url.searchParams.get('alt') === 'sse';
    const call: RecordedCall = {
      key,
      keyInQuery: url.searchParams.has('key'),
      method: req.method ?? 'GET',
      path,
      query: url.search.slice(1),
      model,
      stream,
      headers: { ...req.headers },
      status: 0, // set when answered; stays 0 for hung requests
    };
    calls.push(call);

    const send = (status: number, payload: unknown): void => {
      call.status = status;
      if (res.destroyed) return;
      res.writeHead(status, {
        'content-type': 'application/json; charset=UTF-8',
        ...options.responseHeaders,
      });
      res.end(JSON.stringify(payload));
    };
    const sendStream = async (frames: string[], contentType: string, dieAfter?: number): Promise<void> => {
      call.status = 200;
      res.writeHead(200, {
        'content-type': contentType,
        'cache-control': 'no-cache',
        ...options.responseHeaders,
      });
      res.flushHeaders();
      for (const [i, frame] of frames.entries()) {
        if (i > 0 && options.streamChunkDelayMs) await sleep(options.streamChunkDelayMs);
        if (res.destroyed) return;
        if (i === dieAfter) {
          selfDestroyed = true; // failMidStream: not a client abort
          res.destroy();
          return;
        }
        await new Promise<void>((resolve) => res.write(frame, () => resolve())); // flushed before the next step
      }
      res.end();
    };

    const modelDelay = model === undefined ? undefined : options.modelDelayMs?.[bareModel(model)];
    const delayMs = Number(req.headers['x-fake-delay-ms'] ?? modelDelay ?? options.responseDelayMs ?? 0);
    if (delayMs > 0) await sleep(delayMs);
    if (res.destroyed) return;

    // 1. Credential.
    if (key === undefined) {
      const message =
        "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.";
      return send(403, geminiError(403, 'PERMISSION_DENIED', message));
    }
    const dead = deadKeys.get(key) ?? (options.keys.includes(key) ? undefined : 'API_KEY_INVALID');
    if (dead) return send(...deadKeyError(dead, key));

    // 2. Scripted answers and injected failures.
    const script = scripted.get(key)?.shift() ?? scripted.get('*')?.shift();
    if (script?.raw !== undefined) {
      call.status = script.status;
      if (res.destroyed) return;
      res.writeHead(script.status, script.headers ?? {});
      return void res.end(script.raw);
    }
    if (script) {
      call.status = script.status;
      if (res.destroyed) return;
      res.writeHead(script.status, {
        'content-type': 'application/json; charset=UTF-8',
        ...script.headers,
      });
      return void res.end(JSON.stringify(script.arrayWrapped ? [script.body] : script.body));
    }
    for (const [marker, status] of poisons) {
      if (raw.includes(marker)) return send(status, transientError(status));
    }
    if (take(hangs, key)) return; // never answer; the client must abort (or close() tears it down)
    const failure = failures.get(key);
    if (failure) {
      if (--failure.remaining <= 0) failures.delete(key);
      return send(failure.status, transientError(failure.status));
    }

    // 3. Quota: fixed windows per (key, model, rule), then the plan; only requests that pass are counted.
    const promptTokens = countInputTokens(body, planner.plan?.tokenFactor);
    if (model !== undefined) {
      const m = bareModel(model);
      const now = Date.now();
      const rules = (quotas.get(key) ?? []).filter((q) => bareModel(q.rule.model ?? m) === m);
      const windowOf = (q: QuotaState) => {
        const start = Math.floor(now / q.rule.windowMs) * q.rule.windowMs;
        const current = q.windows.get(m);
        if (current?.start === start) return current;
        const fresh = { start, count: 0 };
        q.windows.set(m, fresh);
        return fresh;
      };
      for (const q of rules) {
        const w = windowOf(q);
        if (w.count >= q.rule.limit) return send(429, quotaError(q.rule, m, w.start + q.rule.windowMs - now));
      }
      // The plan, as Gemini counts: countTokens spends no generation quota.
      if (nativeMethod !== 'countTokens') {
        const refusal = planner.admit(key, m, promptTokens, performance.timeOrigin + performance.now());
        if (refusal !== undefined) return send(429, refusal);
      }
      for (const q of rules) windowOf(q).count++;
    }

    // 4. Normal answers.
    if (model !== undefined && bareModel(model) === 'does-not-exist') {
      const method = nativeMethod ?? 'generateContent';
      const message = `models/does-not-exist is not found for API version v1beta, or is not supported for ${method}. Call ListModels to see the list of available models and their supported methods.`;
      return send(404, notFound(message));
    }
    const chunks = options.streamChunks ?? 5;
    const dieAfter = streamRoute && take(midStream, key) ? 2 : undefined;
    const created = Math.floor(Date.now() / 1000);
    const id = `fake-${++seq}`;

    if (compat) {
      const sub = path.slice(COMPAT_PREFIX.length);
      if (req.method === 'GET' && sub === 'models') {
        const data = MODELS.map((m) => ({ id: `models/${m}`, object: 'model', owned_by: 'google' }));
        return send(200, { object: 'list', data });
      }
      if (req.method === 'POST' && sub === 'chat/completions') {
        if (!isRecord(body) || !Array.isArray(body.messages)) return send(400, badRequest('messages'));
        const usage = {
          prompt_tokens: promptTokens,
          completion_tokens: chunks,
          total_tokens: promptTokens + chunks,
        };
        const base = { id: `chatcmpl-${id}`, created, model };
        if (!streamRoute) {
          const choices = [
            { index: 0, message: { role: 'assistant', content: REPLY }, finish_reason: 'stop' },
          ];
          return send(200, { ...base, object: 'chat.completion', choices, usage });
        }
        const frames = Array.from({ length: chunks }, (_, i) => {
          const last = i === chunks - 1;
          const delta = i === 0 ? { role: 'assistant', content: chunkText(i) } : { content: chunkText(i) };
          const choices = [{ index: 0, delta, finish_reason: last ? 'stop' : null }];
          const event = { ...base, object: 'chat.completion.chunk', choices, ...(last ? { usage } : {}) };
          return `data: ${JSON.stringify(event)}\n\n`;
        });
        return sendStream([...frames, 'data: [DONE]\n\n'], 'text/event-stream', dieAfter);
      }
      if (req.method === 'POST' && sub === 'embeddings') {
        if (!isRecord(body) || body.input === undefined) return send(400, badRequest('input'));
        const input = body.input;
        const inputs: unknown[] = Array.isArray(input) ? input : [input];
        // The openai SDK asks for base64 (little-endian float32) unless the caller picks a format.
        const base64 = body.encoding_format === 'base64';
        const encode = (v: number[]) =>
          base64 ? Buffer.from(new Float32Array(v).buffer).toString('base64') : v;
        const data = inputs.map((x, i) => ({
          object: 'embedding',
          index: i,
          embedding: encode(vector(JSON.stringify(x))),
        }));
        const usage = { prompt_tokens: promptTokens, total_tokens: promptTokens };
        return send(200, { object: 'list', data, model, usage });
      }
      return send(404, notFound());
    }

    if (req.method === 'GET' && path === '/v1beta/models') {
      const supportedGenerationMethods = ['generateContent', 'countTokens'];
      return send(200, {
        models: MODELS.map((m) => ({ name: `models/${m}`, displayName: m, supportedGenerationMethods })),
      });
    }
    if (req.method !== 'POST' || !native || model === undefined) return send(404, notFound());
    if (body === INVALID_JSON) return send(400, badRequest('contents'));
    const usageMetadata = {
      promptTokenCount: promptTokens,
      candidatesTokenCount: chunks,
      totalTokenCount: promptTokens + chunks,
    };
    const answer = (text: string, finish: boolean) => ({
      candidates: [
        {
          content: { parts: [{ text }], role: 'model' },
          ...(finish ? { finishReason: 'STOP' } : {}),
          index: 0,
        },
      ],
      usageMetadata,
      modelVersion: bareModel(model),
      responseId: id,
    });
    switch (nativeMethod) {
      case 'countTokens':
        return send(200, { totalTokens: promptTokens });
      case 'embedContent':
        return send(200, { embedding: { values: vector(raw) } });
      case 'generateContent':
        if (!isRecord(body) || !Array.isArray(body.contents)) return send(400, badRequest('contents'));
        return send(200, answer(REPLY, true));
      default: {
        if (!isRecord(body) || !Array.isArray(body.contents)) return send(400, badRequest('contents'));
        const events = Array.from({ length: chunks }, (_, i) =>
          JSON.stringify(answer(chunkText(i), i === chunks - 1)),
        );
        const sse = events.map((e) => `data: ${e}\r\n\r\n`);
        if (url.searchParams.get('alt') === 'sse') return sendStream(sse, 'text/event-stream', dieAfter);
        // Without alt=sse Gemini streams one JSON array.
        const frames = events.map((e, i) => (i === 0 ? `[${e}` : `,\r\n${e}`));
        return sendStream([...frames, ']'], 'application/json; charset=UTF-8', dieAfter);
      }
    }
  };

  const server = createServer((req, res) => void handle(req, res).catch(() => res.destroy()));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    url,
    openAiBase: `${url}${COMPAT_PREFIX}`,
    calls,
    options,
    get aborted() {
      return aborted;
    },
    setQuota: (key, rule) => void quotas.set(key, [...(quotas.get(key) ?? []), { rule, windows: new Map() }]),
    setPlan: (plan) => {
      planner.plan = plan;
    },
    quotaRefusals: planner.refusals,
    usageOf: (project, model) => planner.usageOf(project, bareModel(model)),
    killKey: (key, reason) => void deadKeys.set(key, reason),
    failNext: (key, count, status = 503) =>
      void (count > 0 && failures.set(key, { remaining: count, status })),
    respondNext: (key, response) => void scripted.set(key, [...(scripted.get(key) ?? []), response]),
    failWhenBodyContains: (marker, status = 500) => void poisons.set(marker, status),
    failMidStream: (key) => void bump(midStream, key),
    hangNext: (key) => void bump(hangs, key),
    callsFor: (key) => calls.filter((c) => c.key === key),
    reset() {
      calls.length = 0;
      aborted = 0;
      for (const m of [quotas, deadKeys, failures, scripted, poisons, midStream, hangs]) m.clear();
      planner.reset();
    },
    close() {
      closing = true;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      return closed;
    },
  };
}
