/** Cooldowns of a key×model: while one holds, and the rule that one only ever extends. */
import type { Cooldown } from './port.js';

/** True while `cooldown` keeps its key from serving its model at `now` (it holds until `until`, exclusive). */
export function isCooling(cooldown: Cooldown, now: number): boolean {
  return cooldown.until > now;
}

/**
 * Sets the cooldown of `model` unless the one held already lasts as long: a cooldown only ever extends,
 * never shortens, whoever sets it and in whatever order the updates arrive. (The DynamoDB store's write
 * carries the same rule as its condition.)
 */
export function extendCooldown(cooldowns: Map<string, Cooldown>, model: string, cooldown: Cooldown): void {
  const held = cooldowns.get(model);
  if (held === undefined || held.until < cooldown.until) cooldowns.set(model, cooldown);
}
