/**
 * The scheduled key check: one cheap call per key that spends no generation quota (listing one model),
 * with bounded concurrency and an overall time budget, and conditional state updates so the checker
 * never fights the proxy: dead → invalid; valid → revived if invalid for a reason that can heal, and its
 * expired cooldowns cleared; 429 and transient failures → nothing.
 */
import { readText } from './body.js';
import { classifyUpstreamResponse } from './gemini-errors.js';
import type { UpstreamClient } from './http.js';
import { isCooling } from './key-state/cooldown.js';
import type { KeyStateStore, KeyView } from './key-state/port.js';
import type { ProxyEndpoint } from './upstream-proxy.js';

/**
 * Reasons a key can recover from without being replaced: the API got (re-)enabled, a block or a
 * suspension was lifted, a transient key-validation hiccup. A leaked key never comes back on its own.
 */
export const HEALABLE_REASONS = [
  'API_KEY_INVALID',
  'SERVICE_DISABLED',
  'API_KEY_SERVICE_BLOCKED',
  'CONSUMER_SUSPENDED',
];

export interface CheckedGroup {
  readonly name: string;
  /** Key id → raw key. */
  readonly keys: ReadonlyMap<string, string>;
  /** The group's outbound proxy: a key checked without it could look dead from a blocked region. */
  readonly proxy?: ProxyEndpoint | undefined;
}

/**
 * What one check saw. Only `transient` (Gemini answered 5xx for this key) lowers the key's score in the
 * proxies; `client_error` (another 4xx) and `unreachable` (no answer: network, DNS, timeout) say nothing
 * about the key, so they are noted and otherwise leave it as it is.
 */
export type CheckOutcome =
  | 'valid'
  | 'dead'
  | 'quota'
  | 'transient'
  | 'client_error'
  | 'unreachable'
  | 'skipped';

export interface KeyCheck {
  readonly group: string;
  readonly keyId: string;
  readonly outcome: CheckOutcome;
  readonly reason?: string | undefined;
}

export interface GroupSummary {
  readonly group: string;
  readonly total: number;
  readonly healthy: number;
  readonly cooling: number;
  readonly invalid: number;
  readonly disabled: number;
}

export interface HealthCheckDeps {
  readonly groups: readonly CheckedGroup[];
  readonly store: KeyStateStore;
  readonly upstream: UpstreamClient;
  /** Base of the native API (`/v1beta/models` is appended). */
  readonly nativeBaseUrl: string;
  readonly concurrency: number;
  /** Time for the whole run; keys not reached by then are `skipped`. */
  readonly budgetMs: number;
  readonly now: () => number;
}

async function checkKey(
  deps: HealthCheckDeps,
  apiKey: string,
  proxy: ProxyEndpoint | undefined,
  signal: AbortSignal,
): Promise<KeyCheck['outcome'] | { dead: string }> {
  try {
    const response = await deps.upstream.send({
      url: new URL(`${deps.nativeBaseUrl}/v1beta/models?pageSize=1`),
      method: 'GET',
      headers: { 'x-goog-api-key': apiKey, accept: 'application/json' },
      body: undefined,
      signal,
      connectTimeoutMs: 5000,
      firstByteTimeoutMs: 10_000,
      proxy,
    });
    const text = (await readText(response.body, 256 * 1024)) ?? '';
    const outcome = classifyUpstreamResponse(response.status, text);
    switch (outcome.kind) {
      case 'success':
        return 'valid';
      case 'dead_key':
        return { dead: outcome.reason };
      case 'quota':
        return 'quota';
      case 'client_error':
        // A 4xx to a plain model listing is not the key's fault we can act on: leave the key as it is.
        return 'client_error';
      default:
        return 'transient';
    }
  } catch {
    return signal.aborted ? 'skipped' : 'unreachable';
  }
}

/** Checks every key and applies what was learnt; returns each key's outcome and per-group counts. */
export async function runHealthCheck(
  deps: HealthCheckDeps,
): Promise<{ checks: KeyCheck[]; groups: GroupSummary[] }> {
  const signal = AbortSignal.timeout(deps.budgetMs);
  const queue = deps.groups.flatMap((g) =>
    [...g.keys].map(([keyId, apiKey]) => ({ group: g.name, keyId, apiKey, proxy: g.proxy })),
  );
  const checks: KeyCheck[] = [];
  let next = 0;
  const worker = async () => {
    while (next < queue.length) {
      const item = queue[next++]!;
      const result = signal.aborted ? 'skipped' : await checkKey(deps, item.apiKey, item.proxy, signal);
      if (typeof result === 'object') {
        await deps.store.record({
          kind: 'invalid',
          group: item.group,
          keyId: item.keyId,
          reason: result.dead,
        });
        checks.push({ group: item.group, keyId: item.keyId, outcome: 'dead', reason: result.dead });
        continue;
      }
      if (result === 'valid') {
        await deps.store.record({
          kind: 'revive',
          group: item.group,
          keyId: item.keyId,
          reasons: HEALABLE_REASONS,
        });
        await deps.store.record({
          kind: 'clear_expired',
          group: item.group,
          keyId: item.keyId,
          now: deps.now(),
        });
      }
      if (result !== 'skipped') {
        // Noted for the proxies' health scores (only a transient failure here lowers the key's score).
        await deps.store.record({
          kind: 'checked',
          group: item.group,
          keyId: item.keyId,
          outcome: result,
          at: deps.now(),
        });
      }
      checks.push({ group: item.group, keyId: item.keyId, outcome: result });
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, deps.concurrency) }, worker));
  await deps.store.flush();

  const now = deps.now();
  const groups: GroupSummary[] = [];
  for (const g of deps.groups) {
    const views = await deps.store.describe(g.name, [...g.keys.keys()]);
    groups.push(summarize(g.name, views, now));
  }
  return { checks, groups };
}

/** Counts a group's keys by state: healthy (active, cooling for no model), cooling, invalid, disabled. */
export function summarize(group: string, views: readonly KeyView[], now: number): GroupSummary {
  let healthy = 0;
  let cooling = 0;
  let invalid = 0;
  let disabled = 0;
  for (const v of views) {
    if (v.status === 'disabled') disabled++;
    else if (v.status === 'invalid') invalid++;
    else if ([...v.cooldowns.values()].some((c) => isCooling(c, now))) cooling++;
    else healthy++;
  }
  return { group, total: views.length, healthy, cooling, invalid, disabled };
}
