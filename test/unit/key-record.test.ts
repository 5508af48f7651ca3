import { describe, expect, it } from 'vitest';
import { extendCooldown } from '../../lambda/core/key-state/cooldown.js';
import {
  applyUpdate,
  type KeyRecord,
  newKeyRecord,
  recordUpdates,
  toView,
} from '../../lambda/core/key-state/key-record.js';
import type { Cooldown, KeyStateUpdate } from '../../lambda/core/key-state/port.js';

const now = 1_000_000;
const at = { group: 'g', keyId: 'k' };
const cool = (until: number, cause: Cooldown['cause'] = 'rpm'): Cooldown => ({ until, cause });

/** What a record holds, as plain data. */
interface State {
  validity: KeyRecord['validity'];
  reason: string | undefined;
  disabled: boolean;
  cooldowns: Record<string, Cooldown>;
  lastCheck: KeyRecord['lastCheck'];
}

const fresh: State = {
  validity: 'active',
  reason: undefined,
  disabled: false,
  cooldowns: {},
  lastCheck: undefined,
};

function recordOf(state: Partial<State>): KeyRecord {
  const record = newKeyRecord('k');
  const { cooldowns, ...rest } = { ...fresh, ...state };
  Object.assign(record, rest);
  for (const [model, c] of Object.entries(cooldowns)) record.cooldowns.set(model, c);
  return record;
}

function stateOf(record: KeyRecord): State {
  const { validity, reason, disabled, lastCheck } = record;
  return { validity, reason, disabled, cooldowns: Object.fromEntries(record.cooldowns), lastCheck };
}

describe('Function: applyUpdate', () => {
  const invalid = (reason: string): KeyStateUpdate => ({ ...at, kind: 'invalid', reason });
  const revive = (...reasons: string[]): KeyStateUpdate => ({ ...at, kind: 'revive', reasons });
  const operator = (status: 'disabled' | 'active'): KeyStateUpdate => ({ ...at, kind: 'operator', status });
  const cooldown = (model: string, c: Cooldown): KeyStateUpdate => ({
    ...at,
    kind: 'cooldown',
    model,
    cooldown: c,
  });
  const cases: Array<[string, Partial<State>, KeyStateUpdate, Partial<State>]> = [
    [
      'a cooldown is set where none is',
      {},
      cooldown('m', cool(now + 10)),
      { cooldowns: { m: cool(now + 10) } },
    ],
    [
      'a longer cooldown extends the one held',
      { cooldowns: { m: cool(now + 10) } },
      cooldown('m', cool(now + 20, 'rpd')),
      { cooldowns: { m: cool(now + 20, 'rpd') } },
    ],
    [
      'a shorter cooldown never shortens the one held',
      { cooldowns: { m: cool(now + 20, 'rpd') } },
      cooldown('m', cool(now + 10)),
      { cooldowns: { m: cool(now + 20, 'rpd') } },
    ],
    [
      'an equally long cooldown keeps the one held (and its cause)',
      { cooldowns: { m: cool(now + 20, 'rpd') } },
      cooldown('m', cool(now + 20, 'transient')),
      { cooldowns: { m: cool(now + 20, 'rpd') } },
    ],
    [
      'a cooldown of one model leaves the others',
      { cooldowns: { other: cool(now + 5) } },
      cooldown('m', cool(now + 10)),
      { cooldowns: { other: cool(now + 5), m: cool(now + 10) } },
    ],
    [
      'invalid takes an active key out, with its reason',
      {},
      invalid('LEAKED'),
      { validity: 'invalid', reason: 'LEAKED' },
    ],
    [
      'invalid keeps the reason of a key already invalid',
      { validity: 'invalid', reason: 'API_KEY_INVALID' },
      invalid('LEAKED'),
      { validity: 'invalid', reason: 'API_KEY_INVALID' },
    ],
    [
      'invalid leaves the operator’s disable as it is',
      { disabled: true },
      invalid('LEAKED'),
      { validity: 'invalid', reason: 'LEAKED', disabled: true },
    ],
    ['the operator disables a key, validity untouched', {}, operator('disabled'), { disabled: true }],
    [
      'lifting a disable restores the key’s validity (still invalid)',
      { validity: 'invalid', reason: 'LEAKED', disabled: true },
      operator('active'),
      { validity: 'invalid', reason: 'LEAKED', disabled: false },
    ],
    [
      'lifting a disable never revives a key',
      { validity: 'invalid', reason: 'LEAKED' },
      operator('active'),
      {
        validity: 'invalid',
        reason: 'LEAKED',
      },
    ],
    [
      'revive makes active a key invalid for one of its reasons',
      { validity: 'invalid', reason: 'SERVICE_DISABLED' },
      revive('CONSUMER_SUSPENDED', 'SERVICE_DISABLED'),
      { validity: 'active', reason: undefined },
    ],
    [
      'revive leaves a key invalid for another reason',
      { validity: 'invalid', reason: 'LEAKED' },
      revive('SERVICE_DISABLED'),
      { validity: 'invalid', reason: 'LEAKED' },
    ],
    [
      'revive with no reasons changes nothing',
      { validity: 'invalid', reason: 'SERVICE_DISABLED' },
      revive(),
      { validity: 'invalid', reason: 'SERVICE_DISABLED' },
    ],
    [
      'revive never lifts the operator’s disable',
      { validity: 'invalid', reason: 'SERVICE_DISABLED', disabled: true },
      revive('SERVICE_DISABLED'),
      { validity: 'active', reason: undefined, disabled: true },
    ],
    [
      'a success changes nothing (it can’t revive a key)',
      { validity: 'invalid', reason: 'LEAKED' },
      { ...at, kind: 'success', model: 'm', latencyMs: 5 },
      { validity: 'invalid', reason: 'LEAKED' },
    ],
    [
      'clear_expired drops only the cooldowns that ended by `now`',
      { cooldowns: { ended: cool(now - 1), edge: cool(now), running: cool(now + 1) } },
      { ...at, kind: 'clear_expired', now },
      { cooldowns: { running: cool(now + 1) } },
    ],
    [
      'checked notes the health check’s answer, status untouched',
      { validity: 'invalid', reason: 'LEAKED' },
      { ...at, kind: 'checked', outcome: 'valid', at: now },
      { validity: 'invalid', reason: 'LEAKED', lastCheck: { outcome: 'valid', at: now } },
    ],
  ];

  it.each(cases)('%s', (_name, before, update, after) => {
    // Prepare
    const record = recordOf(before);

    // Act
    applyUpdate(record, update);

    // Assess
    expect(stateOf(record)).toEqual({ ...fresh, ...before, ...after });
  });
});

describe('Function: extendCooldown', () => {
  it('extends a cooldown in any map of cooldowns, never shortens it', () => {
    const cooldowns = new Map([['m', cool(now + 10)]]);
    extendCooldown(cooldowns, 'm', cool(now + 5));
    expect(cooldowns.get('m')).toEqual(cool(now + 10));
    extendCooldown(cooldowns, 'm', cool(now + 15));
    expect(cooldowns.get('m')).toEqual(cool(now + 15));
  });
});

describe('Function: toView', () => {
  it('shows a disabled key as disabled by the operator, whatever its validity', () => {
    const view = toView(recordOf({ validity: 'invalid', reason: 'LEAKED', disabled: true }));
    expect(view).toMatchObject({ keyId: 'k', status: 'disabled', reason: 'operator' });
  });

  it('shows the validity and its reason while the key is enabled', () => {
    expect(toView(recordOf({ validity: 'invalid', reason: 'LEAKED' }))).toMatchObject({
      status: 'invalid',
      reason: 'LEAKED',
    });
    expect(toView(recordOf({}))).toMatchObject({ status: 'active', reason: undefined });
  });

  it('shares the cooldowns on the hot path and detaches them when asked to copy', () => {
    const record = recordOf({ cooldowns: { m: cool(now + 10) } });
    expect(toView(record).cooldowns).toBe(record.cooldowns);
    const copy = toView(record, true).cooldowns;
    expect(copy).not.toBe(record.cooldowns);
    expect(copy).toEqual(new Map([['m', cool(now + 10)]]));
  });
});

describe('Function: recordUpdates', () => {
  it('rebuilds what the record decides in a fresh record: validity, disable, running cooldowns', () => {
    // Prepare
    const record = recordOf({
      validity: 'invalid',
      reason: 'LEAKED',
      disabled: true,
      cooldowns: { ended: cool(now), running: cool(now + 1, 'rpd') },
    });

    // Act
    const copy = newKeyRecord('k');
    for (const update of recordUpdates('g', record, now)) applyUpdate(copy, update);

    // Assess
    expect(stateOf(copy)).toEqual({
      ...fresh,
      validity: 'invalid',
      reason: 'LEAKED',
      disabled: true,
      cooldowns: { running: cool(now + 1, 'rpd') },
    });
  });

  it('has nothing to say of a fresh record', () => {
    expect(recordUpdates('g', newKeyRecord('k'), now)).toEqual([]);
  });
});
