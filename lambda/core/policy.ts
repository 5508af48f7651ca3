import type { ProxyConfig } from './config/schema.js';
import type { UpstreamOutcome } from './gemini-errors.js';
import type { Cooldown } from './key-state/port.js';
import { nextPacificMidnight } from './pacific-time.js';

/** What the proxy does after an upstream outcome. */
export type Decision =
  /** Give this answer to the client. */
  | { readonly action: 'answer' }
  /** Try the same key again after `delayMs` (transient error, tries left). */
  | { readonly action: 'retry_same_key'; readonly delayMs: number }
  /** Cool the key×model and try another key. */
  | { readonly action: 'cool_and_rotate'; readonly cooldown: Cooldown | undefined }
  /** Mark the key invalid and try another key. */
  | { readonly action: 'invalidate_and_rotate'; readonly reason: string };

/**
 * The outcome policy: given an upstream outcome, how many transient retries the key has had, and
 * the time, decide what to do. Pure; see README "Outcome policy".
 */
export function decide(
  outcome: UpstreamOutcome,
  transientRetriesSoFar: number,
  now: number,
  policy: ProxyConfig['policy'],
): Decision {
  switch (outcome.kind) {
    case 'success':
    case 'client_error':
      return { action: 'answer' };
    case 'dead_key':
      return { action: 'invalidate_and_rotate', reason: outcome.reason };
    case 'quota':
      return { action: 'cool_and_rotate', cooldown: quotaCooldown(outcome, now, policy) };
    case 'internal':
      // A 500 says nothing about the key: the next key at once, nothing cooled. A second key's 500 for
      // the same request shows the failure follows the request: it is the client's answer.
      return outcome.repeated ? { action: 'answer' } : { action: 'cool_and_rotate', cooldown: undefined };
    case 'slow':
      // Slow is not broken: no cooldown, and one more key at most (each attempt may be billed).
      return outcome.resent ? { action: 'answer' } : { action: 'cool_and_rotate', cooldown: undefined };
    case 'transient':
      if (transientRetriesSoFar < policy.transient_retries) {
        return { action: 'retry_same_key', delayMs: policy.transient_retry_delay_ms };
      }
      return {
        action: 'cool_and_rotate',
        cooldown:
          policy.transient_cooldown_ms > 0
            ? { until: now + policy.transient_cooldown_ms, cause: 'transient' }
            : undefined,
      };
  }
}

/**
 * The cooldown a 429 earns: the longest that applies (ties go to the first listed).
 * - Some quota has limit 0 (the model is not in the project's tier): parked as `unavailable` for
 *   `policy.unavailable_park_ms`, by default until the next Pacific midnight — never for Gemini's ~40 s.
 * - A per-day quota is spent: until the next Pacific midnight (`rpd`), whatever RetryInfo says.
 * - A retry delay for a quota that is not limit 0: that long (`tpm` when only input-token quotas are
 *   named, else `rpm`), but never past the next Pacific midnight, when every quota resets. A delay that
 *   is not a finite, non-negative number counts as absent.
 * - Nothing of the above (a bare 429): `policy.default_quota_cooldown_ms` (`quota`).
 */
export function quotaCooldown(
  outcome: Extract<UpstreamOutcome, { kind: 'quota' }>,
  now: number,
  policy: ProxyConfig['policy'],
): Cooldown {
  const midnight = nextPacificMidnight(now);
  const candidates: Cooldown[] = [];
  if (outcome.unavailable) {
    const park = policy.unavailable_park_ms;
    candidates.push({ until: park !== undefined ? now + park : midnight, cause: 'unavailable' });
  }
  if (outcome.scope === 'day') candidates.push({ until: midnight, cause: 'rpd' });
  // Gemini's delay means nothing for a model the tier lacks: only the other quotas wait for it.
  const spent = outcome.violations.filter((v) => v.limit !== 0);
  const delay = outcome.retryDelayMs;
  const delayApplies = !outcome.unavailable || spent.length > 0;
  if (delayApplies && delay !== undefined && Number.isFinite(delay) && delay >= 0) {
    const tokensOnly = spent.length > 0 && spent.every((v) => v.metric === 'tpm');
    candidates.push({ until: Math.min(now + delay, midnight), cause: tokensOnly ? 'tpm' : 'rpm' });
  }
  const longest = candidates.reduce<Cooldown | undefined>(
    (best, c) => (best === undefined || c.until > best.until ? c : best),
    undefined,
  );
  return longest ?? { until: now + policy.default_quota_cooldown_ms, cause: 'quota' };
}
