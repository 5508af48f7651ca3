import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DynamoDbUsageLedger,
  DynamoDbUsageSource,
  usageTtl,
} from '../../lambda/adapters/state/dynamodb/usage-ledger.js';
import { MemoryUsageLedger } from '../../lambda/adapters/state/memory-usage-ledger.js';
import { formatUsageTable, usageCommand } from '../../lambda/cli/usage-report.js';
import type { Logger } from '../../lambda/core/logger.js';
import {
  daysBefore,
  isUsageError,
  OTHER_MODEL,
  type UsageEvent,
  UsageTally,
} from '../../lambda/core/usage-ledger.js';
import { readUsage } from '../../lambda/core/usage-rows.js';
import { type DynamoEngine, startDynamoEngine, testClient } from '../support/dynamo-engine.js';

/** 2025-01-15 08:00 UTC: midnight in Los Angeles (PST), the first instant of 2025-01-15 there. */
const MIDNIGHT = Date.parse('2025-01-15T08:00:00Z');
const ALICE = { clientId: 'a1a1a1a1a1a1a1a1', name: 'alice' };
const BOB = { clientId: 'b2b2b2b2b2b2b2b2', name: undefined };

const event = (over: Partial<UsageEvent> = {}): UsageEvent => ({
  at: MIDNIGHT + 3_600_000,
  client: ALICE,
  keyId: 'k1',
  model: 'gemini-2.5-flash',
  status: 200,
  tokens: { input: 10, output: 5 },
  ...over,
});

describe('Class: UsageTally', () => {
  it('sums requests, errors and tokens per day, client, key and model', () => {
    // Prepare
    const tally = new UsageTally();

    // Act
    tally.add(event());
    tally.add(event({ tokens: { input: 7, output: 3 } }));
    tally.add(event({ status: 429, tokens: undefined }));
    tally.add(event({ keyId: 'k2' }));
    tally.add(event({ client: BOB }));
    tally.add(event({ client: undefined, keyId: undefined, model: '' }));

    // Assess
    const byId = Object.fromEntries(tally.all().map((r) => [`${r.clientId}/${r.keyId}/${r.model}`, r]));
    expect(Object.keys(byId).sort()).toEqual([
      '-/-/-',
      `${ALICE.clientId}/k1/gemini-2.5-flash`,
      `${ALICE.clientId}/k2/gemini-2.5-flash`,
      `${BOB.clientId}/k1/gemini-2.5-flash`,
    ]);
    expect(byId[`${ALICE.clientId}/k1/gemini-2.5-flash`]).toMatchObject({
      day: '2025-01-15',
      clientName: 'alice',
      requests: 3,
      errors: 1,
      inputTokens: 17,
      outputTokens: 8,
    });
    expect(byId[`${BOB.clientId}/k1/gemini-2.5-flash`]!.clientName).toBeUndefined();
  });

  it('counts a request on the Pacific day it ended, not the UTC one', () => {
    // Prepare
    const tally = new UsageTally();

    // Act: one millisecond either side of midnight in Los Angeles (both 2025-01-15 in UTC)
    tally.add(event({ at: MIDNIGHT - 1 }));
    tally.add(event({ at: MIDNIGHT }));

    // Assess
    expect(tally.all().map((r) => [r.day, r.requests])).toEqual([
      ['2025-01-14', 1],
      ['2025-01-15', 1],
    ]);
  });

  it('counts answers of 400 and more and streams cut by Gemini or the deadline as errors', () => {
    expect(isUsageError(200, undefined)).toBe(false);
    expect(isUsageError(200, 'client_gone')).toBe(false);
    expect(isUsageError(200, 'upstream_failed')).toBe(true);
    expect(isUsageError(200, 'deadline')).toBe(true);
    expect(isUsageError(400, undefined)).toBe(true);
    expect(isUsageError(429, undefined)).toBe(true);
    expect(isUsageError(503, undefined)).toBe(true);
  });

  it('holds at most its capacity of combinations: further models count as one other model', () => {
    // Prepare
    const tally = new UsageTally(3);

    // Act: five made-up models
    for (let i = 0; i < 5; i++) tally.add(event({ model: `made-up-${i}` }));
    tally.add(event({ model: 'made-up-0' }));

    // Assess
    const models = Object.fromEntries(tally.all().map((r) => [r.model, r.requests]));
    expect(models).toEqual({ 'made-up-0': 2, 'made-up-1': 1, 'made-up-2': 1, [OTHER_MODEL]: 2 });
  });

  it('steps back calendar days across month ends and DST changes', () => {
    expect(daysBefore('2025-03-10', 1)).toBe('2025-03-09'); // the 23-hour day
    expect(daysBefore('2025-03-01', 1)).toBe('2025-02-28');
    expect(daysBefore('2025-01-01', 2)).toBe('2024-12-30');
    expect(daysBefore('2024-12-31', -1)).toBe('2025-01-01');
  });
});

describe('Function: readUsage (memory ledger)', () => {
  it('reports the last N Pacific days by client, key or model, today first', async () => {
    // Prepare
    const ledger = new MemoryUsageLedger();
    const now = MIDNIGHT + 10 * 3_600_000;
    ledger.add(event({ at: now }));
    ledger.add(event({ at: now, client: BOB, keyId: 'k2', status: 500, tokens: undefined }));
    ledger.add(event({ at: MIDNIGHT - 1, model: 'gemini-2.5-pro' }));
    ledger.add(event({ at: MIDNIGHT - 2 * 86_400_000 })); // three days back: outside 2 days

    // Act
    const byClient = await readUsage(ledger, { days: 2, by: 'client', now });
    const byKey = await readUsage(ledger, { days: 2, by: 'key', now });
    const byModel = await readUsage(ledger, { days: 2, by: 'model', now });

    // Assess
    const counts = { inputTokens: 10, outputTokens: 5 };
    expect(byClient).toEqual([
      { day: '2025-01-15', client: 'alice', clientId: ALICE.clientId, requests: 1, errors: 0, ...counts },
      {
        day: '2025-01-15',
        client: BOB.clientId,
        clientId: BOB.clientId,
        requests: 1,
        errors: 1,
        inputTokens: 0,
        outputTokens: 0,
      },
      { day: '2025-01-14', client: 'alice', clientId: ALICE.clientId, requests: 1, errors: 0, ...counts },
    ]);
    expect(byKey.map((r) => [r.day, r.key, r.requests])).toEqual([
      ['2025-01-15', 'k1', 1],
      ['2025-01-15', 'k2', 1],
      ['2025-01-14', 'k1', 1],
    ]);
    expect(byModel.map((r) => [r.day, r.model, r.requests])).toEqual([
      ['2025-01-15', 'gemini-2.5-flash', 2],
      ['2025-01-14', 'gemini-2.5-pro', 1],
    ]);
  });

  it('prints a table with a total, JSON, or a sentence when nothing was counted', async () => {
    // Prepare
    const ledger = new MemoryUsageLedger();
    ledger.add(event({ at: Date.now() }));
    ledger.add(event({ at: Date.now(), keyId: 'k2', status: 503 }));

    // Act
    const table = await usageCommand({ days: 1, by: 'key', json: false }, ledger);
    const json = JSON.parse(await usageCommand({ days: 1, by: 'client', json: true }, ledger));
    const empty = await usageCommand({ days: 3, by: 'model', json: false }, new MemoryUsageLedger());

    // Assess
    const lines = table.split('\n');
    expect(lines[0]).toMatch(/^DAY\s+KEY ID\s+REQUESTS\s+ERRORS\s+INPUT TOKENS\s+OUTPUT TOKENS$/);
    expect(lines).toHaveLength(4);
    expect(lines[3]).toMatch(/^total\s+2\s+1\s+20\s+10$/);
    expect(json).toEqual([expect.objectContaining({ client: 'alice', requests: 2, errors: 1 })]);
    expect(empty).toBe('No usage counted in the last 3 days (Pacific time).');
    expect(formatUsageTable(json, 'client').split('\n')[1]).toContain(`alice (${ALICE.clientId})`);
  });
});

describe('Class: DynamoDbUsageLedger (real engine)', () => {
  let engine: DynamoEngine;
  const warnings: string[] = [];
  const logger: Logger = {
    debug: () => undefined,
    info: () => undefined,
    warn: (message) => warnings.push(message),
    error: () => undefined,
  };

  beforeAll(async () => {
    engine = await startDynamoEngine();
  });
  afterAll(async () => {
    await engine.close();
  });

  /** A ledger whose client counts the UpdateItem calls it sends. */
  function ledger(now: () => number, flushEveryMs = 60_000) {
    const client = testClient(engine.endpoint);
    const writes = { count: 0 };
    client.middlewareStack.add(
      (next, context) => async (args) => {
        if (context.commandName === 'UpdateItemCommand') writes.count++;
        return next(args);
      },
      { step: 'initialize', name: 'countWrites' },
    );
    return {
      ledger: new DynamoDbUsageLedger({ client, table: engine.table, logger, flushEveryMs, now }),
      source: new DynamoDbUsageSource(client, engine.table),
      writes,
    };
  }

  it('writes one UpdateItem per combination per flush, however many requests it sums', async () => {
    // Prepare: 120 requests over 6 combinations (3 keys × 2 models), a day of its own
    const at = Date.parse('2025-02-03T20:00:00Z');
    const { ledger: l, source, writes } = ledger(() => at);
    for (let i = 0; i < 120; i++) {
      l.add(event({ at, keyId: `k${i % 3}`, model: i % 2 ? 'gemini-2.5-pro' : 'gemini-2.5-flash' }));
    }

    // Act
    expect(writes.count).toBe(0); // nothing written while requests run
    await l.flush();

    // Assess
    expect(writes.count).toBe(6);
    const rows = await readUsage(source, { days: 1, by: 'key', now: at });
    expect(rows.map((r) => [r.key, r.requests, r.inputTokens, r.outputTokens])).toEqual([
      ['k0', 40, 400, 200],
      ['k1', 40, 400, 200],
      ['k2', 40, 400, 200],
    ]);
    await l.flush();
    expect(writes.count).toBe(6); // nothing new: nothing written
  });

  it('writes from a request once the flush interval has passed, off the request', async () => {
    // Prepare
    let now = Date.parse('2025-02-04T20:00:00Z');
    const { ledger: l, source, writes } = ledger(() => now, 5000);
    l.add(event({ at: now }));
    now += 4999;
    l.add(event({ at: now }));
    expect(writes.count).toBe(0);

    // Act: the interval passes; the next request's add starts the write without waiting for it
    now += 1;
    l.add(event({ at: now }));
    await l.flush();

    // Assess
    expect(writes.count).toBe(1);
    expect((await source.read('2025-02-04'))[0]).toMatchObject({ requests: 3, clientName: 'alice' });
  });

  it('keeps the counts of a failed flush and writes them with the next, without throwing', async () => {
    // Prepare
    const at = Date.parse('2025-02-05T20:00:00Z');
    const { ledger: l, source } = ledger(() => at);
    l.add(event({ at }));
    l.add(event({ at, keyId: 'k2' }));

    // Act 1: DynamoDB is down
    await engine.stop();
    try {
      await expect(l.flush()).resolves.toBeUndefined();
    } finally {
      await engine.start();
    }

    // Assess 1: nothing lost, the failure reported
    expect(l.pending).toBe(2);
    expect(warnings).toContain('usage write failed; kept for the next flush');

    // Act 2: more requests, then DynamoDB is back
    l.add(event({ at }));
    await l.flush();

    // Assess 2
    expect(l.pending).toBe(0);
    const rows = await readUsage(source, { days: 1, by: 'key', now: at });
    expect(rows.map((r) => [r.key, r.requests])).toEqual([
      ['k1', 2],
      ['k2', 1],
    ]);
  });

  it('sets a TTL 90 days after the Pacific day ends', () => {
    expect(usageTtl('2025-01-14')).toBe(MIDNIGHT / 1000 + 90 * 86_400);
  });
});
