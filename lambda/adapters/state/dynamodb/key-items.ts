/**
 * A group's key-state items, translated both ways: updates into (conditional) writes, items back into
 * key records. The rules are the core's (`applyUpdate`); each condition here mirrors one of them.
 *
 * | pk | sk | holds |
 * |---|---|---|
 * | `grp#<group>` | `key#<keyId>` | `status`, `reason`, `disabled` (+ the operator's `disabledNote`), last health check, success counters |
 * | `grp#<group>` | `cool#<keyId>#<model>` | cooldown `until`, `cause`, ttl |
 */
import type { KeyRecord, KeyValidity } from '../../../core/key-state/key-record.js';
import type { Cooldown, CooldownCause, KeyStateUpdate } from '../../../core/key-state/port.js';
import { type DeleteInput, type Item, num, str, ttlAfter, type UpdateInput } from './table.js';

/** An UpdateItem of a key-state item, without its key. */
export type KeyItemWrite = Omit<UpdateInput, 'Key'>;

/** The updates that change a key's validity or the operator's switch. */
export type StatusUpdate = Extract<KeyStateUpdate, { kind: 'invalid' | 'revive' | 'operator' }>;

/** The partition of a group's key state. */
export const groupPk = (group: string) => `grp#${group}`;

/** The item of one key: its status, the operator's switch, its last health check, its counters. */
export const keyItemKey = (group: string, keyId: string) => ({ pk: groupPk(group), sk: `key#${keyId}` });

/** The item of one key×model cooldown. */
export const cooldownItemKey = (group: string, keyId: string, model: string) => ({
  pk: groupPk(group),
  sk: `cool#${keyId}#${model}`,
});

/** Sets a cooldown, on the core's condition: only if it extends the one stored. */
export function cooldownWrite(cooldown: Cooldown): KeyItemWrite {
  return {
    UpdateExpression: 'SET #until = :until, #cause = :cause, #ttl = :ttl',
    ConditionExpression: 'attribute_not_exists(#until) OR #until < :until',
    ExpressionAttributeNames: { '#until': 'until', '#cause': 'cause', '#ttl': 'ttl' },
    ExpressionAttributeValues: {
      ':until': cooldown.until,
      ':cause': cooldown.cause,
      ':ttl': ttlAfter(cooldown.until),
    },
  };
}

const STATUS_NAMES = { '#s': 'status', '#r': 'reason', '#at': 'statusAt', '#v': 'version' };

/**
 * A status change, on the core's conditions: `invalid` only from active (a key already invalid keeps its
 * reason), `revive` only from invalid for one of its reasons (which must not be empty). The operator's
 * switch is a separate attribute, written unconditionally: it wins over everything and lifting it leaves
 * the key's validity as it is.
 */
export function statusWrite(update: StatusUpdate, now: number): KeyItemWrite {
  switch (update.kind) {
    case 'invalid':
      return {
        UpdateExpression: 'SET #s = :invalid, #r = :reason, #at = :now ADD #v :one',
        ConditionExpression: 'attribute_not_exists(#s) OR #s = :active',
        ExpressionAttributeNames: STATUS_NAMES,
        ExpressionAttributeValues: {
          ':invalid': 'invalid',
          ':active': 'active',
          ':reason': update.reason,
          ':now': now,
          ':one': 1,
        },
      };
    case 'revive': {
      const reasons = Object.fromEntries(update.reasons.map((r, i) => [`:r${i}`, r]));
      return {
        UpdateExpression: 'SET #s = :active, #at = :now REMOVE #r ADD #v :one',
        ConditionExpression: `#s = :invalid AND #r IN (${Object.keys(reasons).join(', ')})`,
        ExpressionAttributeNames: STATUS_NAMES,
        ExpressionAttributeValues: {
          ':invalid': 'invalid',
          ':active': 'active',
          ':now': now,
          ':one': 1,
          ...reasons,
        },
      };
    }
    case 'operator': {
      const names = { '#d': 'disabled', '#n': 'disabledNote', '#at': 'statusAt', '#v': 'version' };
      if (update.status === 'active')
        return {
          UpdateExpression: 'SET #at = :now REMOVE #d, #n ADD #v :one',
          ExpressionAttributeNames: names,
          ExpressionAttributeValues: { ':now': now, ':one': 1 },
        };
      const note = update.note === undefined || update.note === '' ? undefined : update.note;
      return {
        UpdateExpression:
          note === undefined
            ? 'SET #d = :true, #at = :now REMOVE #n ADD #v :one'
            : 'SET #d = :true, #n = :note, #at = :now ADD #v :one',
        ExpressionAttributeNames: names,
        ExpressionAttributeValues: {
          ':true': true,
          ':now': now,
          ':one': 1,
          ...(note === undefined ? {} : { ':note': note }),
        },
      };
    }
  }
}

/** Adds to the success counters: statistics, unconditional, and the status is never touched. */
export function successCountersWrite(count: number, latencyMs: number, lastAt: number): KeyItemWrite {
  return {
    UpdateExpression: 'ADD #ok :n, #lat :l SET #last = :t',
    ExpressionAttributeNames: { '#ok': 'okCount', '#lat': 'okLatencyMs', '#last': 'lastOkAt' },
    ExpressionAttributeValues: { ':n': count, ':l': latencyMs, ':t': lastAt },
  };
}

/**
 * Deletes a cooldown if it has ended by `now` (the other side of `isCooling`): one extended meanwhile stays.
 */
export function endedCooldownDelete(group: string, keyId: string, model: string, now: number): DeleteInput {
  return {
    Key: cooldownItemKey(group, keyId, model),
    ConditionExpression: '#until <= :now',
    ExpressionAttributeNames: { '#until': 'until' },
    ExpressionAttributeValues: { ':now': now },
  };
}

/** Notes the health check's answer: not a decision, so unconditional, and the status is not touched. */
export function checkedWrite(outcome: string, at: number): KeyItemWrite {
  return {
    UpdateExpression: 'SET #c = :c, #ca = :at',
    ExpressionAttributeNames: { '#c': 'lastCheck', '#ca': 'lastCheckAt' },
    ExpressionAttributeValues: { ':c': outcome, ':at': at },
  };
}

/** What a key item says of the key's validity (no item: active). */
export function storedValidity(item: Item | undefined): {
  validity: KeyValidity;
  reason: string | undefined;
} {
  return { validity: str(item?.status) === 'invalid' ? 'invalid' : 'active', reason: str(item?.reason) };
}

/** The cooldown a cooldown item holds, if any (a cause it doesn't name reads as `quota`). */
export function storedCooldown(item: Item | undefined): Cooldown | undefined {
  const until = num(item?.until);
  return until === undefined ? undefined : { until, cause: (str(item?.cause) ?? 'quota') as CooldownCause };
}

/** Reads one item of a group's partition into the record of the key it names (`record` finds or makes it). */
export function readGroupItem(item: Item, record: (keyId: string) => KeyRecord): void {
  const sk = str(item.sk) ?? '';
  if (sk.startsWith('key#')) {
    const k = record(sk.slice(4));
    Object.assign(k, storedValidity(item));
    k.disabled = item.disabled === true;
    const checkedAt = num(item.lastCheckAt);
    const outcome = str(item.lastCheck);
    k.lastCheck = checkedAt === undefined || outcome === undefined ? undefined : { outcome, at: checkedAt };
  } else if (sk.startsWith('cool#')) {
    const rest = sk.slice(5);
    const hash = rest.indexOf('#');
    const cooldown = storedCooldown(item);
    if (hash > 0 && cooldown !== undefined)
      record(rest.slice(0, hash)).cooldowns.set(rest.slice(hash + 1), cooldown);
  }
}
