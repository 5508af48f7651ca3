/**
 * The key record: what a store holds of one key, and the rules every update follows. The memory store
 * keeps records; the DynamoDB store's conditional writes mirror these rules and its cache applies them.
 */
import { BoundedMap } from '../bounded-map.js';
import { extendCooldown, isCooling } from './cooldown.js';
import type { Cooldown, KeyStateUpdate, KeyStatus, KeyView } from './port.js';

/**
 * Most models one key holds cooldowns for. Gemini serves about a hundred; past the bound the cooldown
 * set longest ago is dropped (the key may then meet one more 429 for that model, which cools it again).
 */
export const MAX_COOLDOWN_MODELS_PER_KEY = 256;

/** Whether a key works, as upstream answers and health checks found: apart from the operator's switch. */
export type KeyValidity = Exclude<KeyStatus, 'disabled'>;

/** One key's state, mutable: changed only through {@link applyUpdate} (or adopted from a shared store). */
export interface KeyRecord {
  readonly keyId: string;
  validity: KeyValidity;
  /** Why the key is invalid; undefined while it is active. */
  reason: string | undefined;
  /** The operator's switch, kept apart from validity: lifting it restores whatever validity the key has. */
  disabled: boolean;
  /** Cooldowns by model, at most {@link MAX_COOLDOWN_MODELS_PER_KEY} (model names come from clients). */
  readonly cooldowns: BoundedMap<string, Cooldown>;
  /** The scheduled health check's last answer for this key, if any. */
  lastCheck: { outcome: string; at: number } | undefined;
}

/** A key nothing is known of yet: active, enabled, not cooling. */
export function newKeyRecord(keyId: string): KeyRecord {
  return {
    keyId,
    validity: 'active',
    reason: undefined,
    disabled: false,
    cooldowns: new BoundedMap(MAX_COOLDOWN_MODELS_PER_KEY),
    lastCheck: undefined,
  };
}

/**
 * Applies what an upstream answer, the health check or the operator taught about a key. The rules:
 * a cooldown only extends; `invalid` keeps the reason of a key already invalid; `revive` makes active only
 * a key invalid for one of its reasons; the operator's `disabled` wins over everything and lifting it
 * restores the key's validity; a success changes nothing (it can't revive a key); `clear_expired` drops
 * cooldowns that have ended; `checked` notes the health check's answer.
 */
export function applyUpdate(record: KeyRecord, update: KeyStateUpdate): void {
  switch (update.kind) {
    case 'success':
    case 'learned':
    case 'tokens':
      // Budget facts, not the key's: the stores keep them with the budget windows.
      return;
    case 'cooldown':
      extendCooldown(record.cooldowns, update.model, update.cooldown);
      return;
    case 'invalid':
      if (record.validity === 'active') {
        record.validity = 'invalid';
        record.reason = update.reason;
      }
      return;
    case 'revive':
      if (record.validity === 'invalid' && update.reasons.includes(record.reason ?? '')) {
        record.validity = 'active';
        record.reason = undefined;
      }
      return;
    case 'operator':
      record.disabled = update.status === 'disabled';
      return;
    case 'clear_expired':
      for (const [model, cooldown] of record.cooldowns) {
        if (!isCooling(cooldown, update.now)) record.cooldowns.delete(model);
      }
      return;
    case 'checked':
      record.lastCheck = { outcome: update.outcome, at: update.at };
      return;
  }
}

/**
 * A read-only view of a record, as selection and `describe` see it: a disabled key reads `disabled` for
 * reason `operator`. `copy` detaches the cooldowns (for callers that keep the view); the hot path shares them.
 */
export function toView(record: KeyRecord, copy = false): KeyView {
  return {
    keyId: record.keyId,
    status: record.disabled ? 'disabled' : record.validity,
    reason: record.disabled ? 'operator' : record.reason,
    cooldowns: copy ? new Map(record.cooldowns) : record.cooldowns,
    lastCheck: record.lastCheck,
  };
}

/**
 * The updates that bring another store's record of this key to the same decisions: its validity, the
 * operator's switch and the cooldowns still running at `now` (how a shared store seeds its fallback).
 */
export function recordUpdates(group: string, record: KeyRecord, now: number): KeyStateUpdate[] {
  const { keyId } = record;
  const updates: KeyStateUpdate[] = [];
  if (record.validity === 'invalid')
    updates.push({ kind: 'invalid', group, keyId, reason: record.reason ?? 'unknown' });
  if (record.disabled) updates.push({ kind: 'operator', group, keyId, status: 'disabled' });
  for (const [model, cooldown] of record.cooldowns) {
    if (isCooling(cooldown, now)) updates.push({ kind: 'cooldown', group, keyId, model, cooldown });
  }
  return updates;
}
