import * as z from 'zod/mini';
import { normalizeModel } from '../routes.js';
import {
  configSchema,
  type GroupConfig,
  groupSchema,
  type ProxyConfig,
  type StateConfig,
  stateSchema,
} from './schema.js';

/** Raised for a configuration that can't be used; the message names every bad field and no value. */
export class ConfigError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'ConfigError';
  }
}

/** Formats a zod path as `groups[1].api_keys`. */
function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out === '' ? String(part) : `.${String(part)}`;
  }
  return out === '' ? '(root)' : out;
}

/**
 * An unknown field's name is shown only when it reads like a field (a misspelt `polcy`): a key or token
 * pasted one line off becomes a field name too, and must not be echoed into a log or a terminal.
 */
function unknownFields(names: readonly PropertyKey[]): string {
  const shown = names.map((n) =>
    /^[a-z][a-z0-9_]{0,39}$/.test(String(n)) ? String(n) : '(a name not shown)',
  );
  return `unknown field${names.length > 1 ? 's' : ''} ${shown.join(', ')}`;
}

/**
 * A {@link ConfigError} listing `path: problem` for each issue, the paths under `prefix` (the section
 * validated on its own). Values are never echoed, so a misplaced key can't leak through the message.
 */
export function issuesError(
  heading: string,
  issues: readonly z.core.$ZodIssue[],
  prefix: readonly PropertyKey[] = [],
): ConfigError {
  const lines = issues.map((issue) => {
    // A mapping's bad key is a value (a misplaced API key, say): the path stops at the mapping.
    if (issue.code === 'invalid_key') {
      const why = issue.issues[0]?.message ?? issue.message;
      return `${formatPath([...prefix, ...issue.path.slice(0, -1)])}: a key is not valid (${why})`;
    }
    const message = issue.code === 'unrecognized_keys' ? unknownFields(issue.keys) : issue.message;
    return `${formatPath([...prefix, ...issue.path])}: ${message}`;
  });
  return new ConfigError(`${heading}:\n  ${lines.join('\n  ')}`);
}

/**
 * Validates raw configuration data and applies defaults.
 * Throws {@link ConfigError} listing `path: problem` for each issue; values are never echoed,
 * so a misplaced key can't leak through the message.
 */
export function parseConfig(raw: unknown): ProxyConfig {
  const result = configSchema.safeParse(raw);
  if (!result.success) throw issuesError('invalid configuration', result.error.issues);
  const config = result.data;
  const names = new Set<string>();
  for (const [i, group] of config.groups.entries()) {
    if (names.has(group.name))
      throw new ConfigError(`invalid configuration:\n  groups[${i}].name: duplicate group name`);
    names.add(group.name);
  }
  const chainProblems = fallbackProblems(config.fallbacks);
  if (chainProblems.length > 0)
    throw new ConfigError(`invalid configuration:\n  ${chainProblems.join('\n  ')}`);
  if (config.client_tokens.length === 0 && !config.server.allow_unauthenticated) {
    throw new ConfigError(
      'invalid configuration:\n  client_tokens: expected at least 1 token (or server.allow_unauthenticated: true on a loopback host)',
    );
  }
  if (config.client_tokens.length === 0 && !isLoopbackHost(config.server.host)) {
    throw new ConfigError(
      `invalid configuration:\n  server.allow_unauthenticated: only allowed when server.host is a loopback address, not ${config.server.host}`,
    );
  }
  return config;
}

/**
 * What is wrong with the `fallbacks` chains, compared as state keys names (no `models/` prefix): a model
 * with two chains, a chain naming its own model, or a model twice. Names are canonical (checked by the
 * schema), so the field paths that name them echo no secret.
 */
function fallbackProblems(fallbacks: ProxyConfig['fallbacks']): string[] {
  const problems: string[] = [];
  const chains = new Set<string>();
  for (const [from, chain] of Object.entries(fallbacks)) {
    const model = normalizeModel(from);
    if (chains.has(model)) problems.push(`fallbacks.${from}: a second chain for the same model`);
    chains.add(model);
    const seen = new Set<string>();
    for (const [i, to] of chain.entries()) {
      const next = normalizeModel(to);
      if (next === model) problems.push(`fallbacks.${from}[${i}]: a model can't fall back to itself`);
      else if (seen.has(next)) problems.push(`fallbacks.${from}[${i}]: the model is already in the list`);
      seen.add(next);
    }
  }
  return problems;
}

/** Validates a `groups` list on its own (the keys secret, read by the health check), naming bad fields. */
export function parseGroups(raw: unknown): GroupConfig[] {
  const result = z.array(groupSchema, 'expected a list of groups').safeParse(raw);
  if (result.success) return result.data;
  throw issuesError('invalid configuration', result.error.issues, ['groups']);
}

/** Validates just the `state` section (for entries that take the rest of the config from elsewhere). */
export function parseStateConfig(raw: unknown): StateConfig {
  const result = stateSchema.safeParse(raw);
  if (result.success) return result.data;
  throw issuesError('invalid configuration', result.error.issues, ['state']);
}

/** True for 127.0.0.0/8, ::1 and localhost. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127(\.\d{1,3}){3}$/.test(h);
}
