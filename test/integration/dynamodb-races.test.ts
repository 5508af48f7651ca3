import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoDbKeyStateStore } from '../../lambda/adapters/state/dynamodb/store.js';
import type { KeyStateStore } from '../../lambda/core/key-state/port.js';
import { type DynamoEngine, startDynamoEngine, testClient } from '../support/dynamo-engine.js';

describe('Integration: racing writers on one DynamoDB table (real engine)', () => {
  let engine: DynamoEngine;
  let a: KeyStateStore;
  let b: KeyStateStore;
  let seq = 0;
  const group = () => `race${++seq}`;

  beforeAll(async () => {
    engine = await startDynamoEngine();
    const make = () =>
      new DynamoDbKeyStateStore({
        client: testClient(engine.endpoint),
        table: engine.table,
        cacheMs: 0,
        rotationShards: 1,
      });
    a = make();
    b = make();
  });
  afterAll(async () => {
    await engine.close();
  });

  it('keeps the longer cooldown whatever order racing writers land in', async () => {
    // Prepare
    const g = group();
    const now = Date.now();
    await Promise.all([a.describe(g, ['k']), b.describe(g, ['k'])]);

    // Act: 20 long and 20 short cooldowns for one key×model, interleaved across two instances
    await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        (i % 2 === 0 ? a : b).record({
          kind: 'cooldown',
          group: g,
          keyId: 'k',
          model: 'm',
          cooldown:
            i % 2 === 0
              ? { until: now + 60_000 + i, cause: 'rpd' }
              : { until: now + 5_000 + i, cause: 'rpm' },
        }),
      ),
    );

    // Assess: the table and both instances' views hold the longest one
    const longest = { until: now + 60_000 + 38, cause: 'rpd' };
    expect((await a.describe(g, ['k']))[0]?.cooldowns.get('m')).toEqual(longest);
    expect((await b.describe(g, ['k']))[0]?.cooldowns.get('m')).toEqual(longest);
    const picked = await b.acquire({
      group: g,
      keys: [{ keyId: 'k', budget: 'key:k' }],
      model: 'm',
      now: now + 10_000,
      exclude: new Set(),
    });
    expect(picked).toEqual({ kind: 'unavailable', retryAt: longest.until, cause: 'cooling' });
  });

  it('does not let racing successes revive an invalid key', async () => {
    const g = group();
    await Promise.all([
      a.record({ kind: 'invalid', group: g, keyId: 'k', reason: 'API_KEY_INVALID' }),
      ...Array.from({ length: 20 }, () =>
        b.record({ kind: 'success', group: g, keyId: 'k', model: 'm', latencyMs: 3 }),
      ),
      b.flush(),
    ]);
    await b.flush();
    expect((await b.describe(g, ['k']))[0]).toMatchObject({ status: 'invalid', reason: 'API_KEY_INVALID' });
  });

  it('lets operator disable win over racing invalids, successes and cooldowns', async () => {
    const g = group();
    await Promise.all([
      b.record({ kind: 'invalid', group: g, keyId: 'k', reason: 'LEAKED' }),
      a.record({ kind: 'operator', group: g, keyId: 'k', status: 'disabled' }),
      b.record({ kind: 'invalid', group: g, keyId: 'k', reason: 'CONSUMER_SUSPENDED' }),
      b.record({ kind: 'success', group: g, keyId: 'k', model: 'm', latencyMs: 1 }),
      b.record({
        kind: 'cooldown',
        group: g,
        keyId: 'k',
        model: 'm',
        cooldown: { until: Date.now() + 1000, cause: 'rpm' },
      }),
    ]);
    await b.flush();
    // Whatever landed first, a later invalid can't overwrite disabled.
    await b.record({ kind: 'invalid', group: g, keyId: 'k', reason: 'LEAKED' });
    expect((await a.describe(g, ['k']))[0]).toMatchObject({ status: 'disabled', reason: 'operator' });
    expect((await b.describe(g, ['k']))[0]).toMatchObject({ status: 'disabled' });
  });
});
