import type { GroupConfig, ProxyConfig, StateConfig } from './schema.js';

/** What the proxy reads off a parsed configuration. */

/**
 * The longest one request waits on DynamoDB in all: the cold bound for its first call, then one
 * `timeout_ms` for each further failure it takes to count DynamoDB as down
 * (`cold_timeout_ms + (outage_failures - 1) × timeout_ms`: 2.5 s with the defaults). Only a budget claim
 * waits that long; a read or rotation waits one call's bound at most.
 */
export function stateWaitAllowanceMs(
  state: Pick<StateConfig, 'timeout_ms' | 'cold_timeout_ms' | 'outage_failures'>,
): number {
  return Math.max(state.cold_timeout_ms, state.timeout_ms) + (state.outage_failures - 1) * state.timeout_ms;
}

/** A configured key with its quota budget: its project if given, else the key itself. */
export interface ConfiguredKey {
  readonly apiKey: string;
  readonly project: string | undefined;
  /** Marked `disabled: true` in the configuration: kept out of rotation. */
  readonly disabled: boolean;
}

export function configuredKeys(group: GroupConfig): ConfiguredKey[] {
  return group.api_keys.map((k) =>
    typeof k === 'string'
      ? { apiKey: k, project: undefined, disabled: false }
      : { apiKey: k.key, project: k.project, disabled: k.disabled === true },
  );
}

/** Client tokens with their optional per-minute limit; `token` is absent where only its hash is configured. */
export function configuredTokens(config: ProxyConfig): Array<{
  token: string | undefined;
  sha256: string | undefined;
  name: string | undefined;
  rpm: number | undefined;
}> {
  return config.client_tokens.map((t) => {
    if (typeof t === 'string') return { token: t, sha256: undefined, name: undefined, rpm: undefined };
    if ('token' in t) return { token: t.token, sha256: undefined, name: t.name, rpm: t.rpm };
    return { token: undefined, sha256: t.sha256.toLowerCase(), name: t.name, rpm: t.rpm };
  });
}
