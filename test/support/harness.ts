import type { Socket } from 'node:net';
import OpenAI from 'openai';
import { JsonLogger } from '../../lambda/adapters/logger.js';
import { parseConfig } from '../../lambda/core/config/parse.js';
import type { ProxyConfig } from '../../lambda/core/config/schema.js';
import type { KeyStateStore } from '../../lambda/core/key-state/port.js';
import type { RequestMetrics } from '../../lambda/core/metrics.js';
import { type RunningServer, startLocalServer } from '../../lambda/local/server.js';
import { type FakeGemini, startFakeGemini } from './fake-gemini.js';

/** Obviously fake keys and tokens; the leak check looks for each of them in everything captured. */
export const KEYS = [
  'fake-key-alpha-0000',
  'fake-key-bravo-1111',
  'fake-key-charlie-22',
  'fake-key-delta-3333',
];
export const TOKEN = 'client-token-e2e-secret';
export const MODEL = 'gemini-2.5-flash';

export interface Harness {
  readonly fake: FakeGemini;
  readonly server: RunningServer;
  readonly url: string;
  readonly openai: OpenAI;
  readonly config: ProxyConfig;
  /** Every log line the proxy wrote. */
  readonly logs: string[];
  /** Every byte the proxy sent to clients (status lines, headers, bodies), as text. */
  readonly wire: string[];
  /** Every request's metrics, as the proxy recorded them. */
  readonly metrics: RequestMetrics[];
  /** Mutable clock the proxy reads (ms since epoch). */
  clock: { now: number | undefined };
  close(): Promise<void>;
}

export interface HarnessOptions {
  readonly keys?: readonly string[];
  /** Overrides merged into the generated config (snake_case, as in YAML). */
  readonly config?: Record<string, unknown>;
  /** Groups (given the fake, to aim `target_url` at it); default: one group of KEYS. */
  readonly groups?: (fake: FakeGemini) => Array<Record<string, unknown>>;
  /** Client tokens as in the config; default: [TOKEN]. */
  readonly clientTokens?: unknown[];
  /** A key-state store to use instead of the one the config names. */
  readonly store?: KeyStateStore;
}

/** Starts a fake Gemini and the real local proxy wired to it, both on 127.0.0.1. */
export async function startHarness(options: HarnessOptions = {}): Promise<Harness> {
  const keys = options.keys ?? KEYS;
  const fake = await startFakeGemini({ keys: [...keys] });
  const base: Record<string, Record<string, unknown>> = {
    server: { host: '127.0.0.1', port: 0 },
    // The model list (read from Gemini in the background) is off unless a test turns it on: it would be
    // an extra call in every test's count.
    upstream: { native_base_url: fake.url, first_byte_timeout_ms: 2000, model_list_ms: 0 },
    policy: { transient_retry_delay_ms: 5 },
  };
  // Sections given in options.config are merged over these, field by field.
  for (const [section, value] of Object.entries(options.config ?? {})) {
    base[section] = { ...base[section], ...(value as Record<string, unknown>) };
  }
  const config = parseConfig({
    client_tokens: options.clientTokens ?? [TOKEN],
    groups: options.groups?.(fake) ?? [{ name: 'primary', api_keys: [...keys], target_url: fake.openAiBase }],
    ...base,
  });
  const logs: string[] = [];
  const wire: string[] = [];
  const clock: { now: number | undefined } = { now: undefined };
  const metrics: RequestMetrics[] = [];
  const server = await startLocalServer({
    config,
    logger: new JsonLogger('debug', (line) => logs.push(line)),
    now: () => clock.now ?? Date.now(),
    metrics: { record: (m) => metrics.push(m) },
    store: options.store,
  });
  server.server.on('connection', (socket: Socket) => {
    const write = socket.write.bind(socket) as (...args: unknown[]) => boolean;
    socket.write = ((chunk: unknown, ...rest: unknown[]) => {
      wire.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk as Uint8Array).toString('utf8'));
      return write(chunk, ...rest);
    }) as typeof socket.write;
  });
  const openai = new OpenAI({ apiKey: TOKEN, baseURL: `${server.url}/v1`, maxRetries: 0 });
  return {
    fake,
    server,
    url: server.url,
    openai,
    config,
    logs,
    wire,
    metrics,
    clock,
    async close() {
      await server.close(100);
      await fake.close();
    },
  };
}

/** Secrets that must never appear in what the proxy logs or sends to clients. */
export function leaks(harness: Harness, secrets: readonly string[] = [...KEYS, TOKEN]): string[] {
  const everything = [...harness.logs, ...harness.wire].join('\n');
  return secrets.filter((s) => everything.includes(s));
}

export function chatBody(model = MODEL, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }], ...extra });
}

/** POST /v1/chat/completions with the client token. */
export function postChat(harness: Harness, body: string = chatBody(), headers: Record<string, string> = {}) {
  return fetch(`${harness.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json', ...headers },
    body,
  });
}

/** Which configured key (by index) served each upstream call so far. */
export function keyIndexes(harness: Harness): number[] {
  return harness.fake.calls.map((c) => KEYS.indexOf(c.key ?? ''));
}
