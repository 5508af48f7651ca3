import * as z from 'zod/mini';
import { issuesError } from './parse.js';
import { fallbacksSchema, policySchema, stateSchema, upstreamSchema } from './schema.js';

const settingsSchema = z.strictObject({
  upstream: z.optional(upstreamSchema),
  policy: z.optional(policySchema),
  state: z.optional(stateSchema),
  fallbacks: z.optional(fallbacksSchema),
});

/**
 * The deployable subset of the config (`upstream`, `policy`, `state`, `fallbacks`), as written: every field optional
 * (defaults are applied when the full config is parsed), snake_case like the config file.
 */
export type ProxySettings = z.input<typeof settingsSchema>;

/**
 * Checks deployment settings (the CDK `settings` context, the function's PROXY_SETTINGS) with the
 * config's own rules, so a bad value fails at synth and at start-up with the field named. Returns the
 * input unchanged: defaults are applied when the full config is parsed.
 */
export function checkSettings(raw: unknown): ProxySettings {
  const result = settingsSchema.safeParse(raw);
  if (!result.success) throw issuesError('invalid settings', result.error.issues);
  return raw as ProxySettings;
}
