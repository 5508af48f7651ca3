import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ScanCommand } from '@aws-sdk/client-dynamodb';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoDbUsageSource } from '../../lambda/adapters/state/dynamodb/usage-ledger.js';
import { usageCommand } from '../../lambda/cli/usage-report.js';
import { keyId, sha256 } from '../../lambda/core/credentials.js';
import { readUsage, type UsageRow } from '../../lambda/core/usage-rows.js';
import { CliOutputs } from '../support/cli-runner.js';
import { type DynamoEngine, startDynamoEngine, testClient } from '../support/dynamo-engine.js';
import type { RecordedCall } from '../support/fake-gemini.js';
import { chatBody, type Harness, KEYS, leaks, MODEL, startHarness } from '../support/harness.js';
import { tempDirs } from '../support/temp-dir.js';

const tempDir = tempDirs();
const cli = new CliOutputs();

const USED_KEYS = KEYS.slice(0, 2);
const CLIENTS = [
  { name: 'alice', token: 'usage-token-alice-secret-1' },
  { name: 'bob', token: 'usage-token-bob-secret-22' },
];
const SECRETS = [...USED_KEYS, ...CLIENTS.map((c) => c.token)];
const clientId = (token: string) => sha256(token).toString('hex').slice(0, 16);

interface Usage {
  input: number;
  output: number;
}

/** The kinds of request sent, each answered by the fake with the token counts it reports. */
const KINDS = {
  chat: { path: '/v1/chat/completions', body: chatBody() },
  chatStream: { path: '/v1/chat/completions', body: chatBody(MODEL, { stream: true }) },
  native: {
    path: `/v1beta/models/${MODEL}:generateContent`,
    body: JSON.stringify({ contents: [{ role: 'user', parts: [{ text: 'hi' }] }] }),
  },
  nativeStream: {
    path: `/v1beta/models/${MODEL}:streamGenerateContent?alt=sse`,
    body: JSON.stringify({ contents: [{ role: 'user', parts: [{ text: 'hi' }] }] }),
  },
  /** Gemini refuses it (400): an error, no tokens. */
  bad: { path: '/v1/chat/completions', body: JSON.stringify({ model: MODEL, messages: 'not a list' }) },
} as const;
type Kind = keyof typeof KINDS;

/** The same kind as the fake recorded the call (its path and whether it streamed). */
function kindOf(call: RecordedCall): Kind {
  if (call.path.endsWith(':generateContent')) return 'native';
  if (call.path.endsWith(':streamGenerateContent')) return 'nativeStream';
  if (call.status === 400) return 'bad';
  return call.stream ? 'chatStream' : 'chat';
}

/** The last usage the fake reported in an answer (JSON or SSE), in either surface's words. */
function reportedUsage(text: string): Usage | undefined {
  const inputs = [...text.matchAll(/"(?:prompt_tokens|promptTokenCount)":(\d+)/g)];
  const outputs = [...text.matchAll(/"(?:completion_tokens|candidatesTokenCount)":(\d+)/g)];
  if (inputs.length === 0 || outputs.length === 0) return undefined;
  return { input: Number(inputs.at(-1)![1]), output: Number(outputs.at(-1)![1]) };
}

describe('Integration: usage accounting across two proxies on one table (real engine)', () => {
  let engine: DynamoEngine;

  beforeAll(async () => {
    engine = await startDynamoEngine();
  });
  afterAll(async () => {
    await engine.close();
  });

  const proxy = (tokens: unknown[], server: Record<string, unknown> = {}) =>
    startHarness({
      keys: USED_KEYS,
      clientTokens: tokens,
      config: {
        server,
        state: { store: 'dynamodb', endpoint: engine.endpoint, table: engine.table, cache_ms: 100 },
      },
    });

  async function send(
    h: Harness,
    kind: Kind,
    token: string | undefined,
  ): Promise<[number, Usage | undefined]> {
    const res = await fetch(`${h.url}${KINDS[kind].path}`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
      },
      body: KINDS[kind].body,
    });
    return [res.status, reportedUsage(await res.text())];
  }

  it('reports exactly the requests and the tokens Gemini reported, per client and per key', async () => {
    // Prepare: two proxies, each with its own store and ledger, on one table; two named clients
    const tokens = CLIENTS.map((c) => ({ token: c.token, name: c.name }));
    const proxies = [await proxy(tokens), await proxy(tokens)];
    const sent = new Map<string, { requests: number; errors: number; input: number; output: number }>();
    const tokensOf = new Map<Kind, Usage>();
    let n = 0;
    try {
      // Act: every kind of request, from both clients, through both proxies
      for (let round = 0; round < 2; round++) {
        for (const h of proxies) {
          for (const client of CLIENTS) {
            for (const kind of Object.keys(KINDS) as Kind[]) {
              const [status, usage] = await send(h, kind, client.token);
              expect(status).toBe(kind === 'bad' ? 400 : 200);
              expect(usage === undefined).toBe(kind === 'bad');
              if (usage !== undefined) tokensOf.set(kind, usage);
              const s = sent.get(client.name) ?? { requests: 0, errors: 0, input: 0, output: 0 };
              s.requests++;
              if (kind === 'bad') s.errors++;
              s.input += usage?.input ?? 0;
              s.output += usage?.output ?? 0;
              sent.set(client.name, s);
              n++;
            }
          }
        }
      }
    } finally {
      // Closing flushes each proxy's ledger, as an invocation's end does on Lambda.
      for (const h of proxies) await h.close();
    }

    // Assess: by client, exactly what was sent and what the fake reported (two days: midnight may pass)
    const source = new DynamoDbUsageSource(testClient(engine.endpoint), engine.table);
    const total = (rows: UsageRow[], pick: (r: UsageRow) => string | undefined) => {
      const sums = new Map<string, { requests: number; errors: number; input: number; output: number }>();
      for (const r of rows) {
        const s = sums.get(pick(r)!) ?? { requests: 0, errors: 0, input: 0, output: 0 };
        s.requests += r.requests;
        s.errors += r.errors;
        s.input += r.inputTokens;
        s.output += r.outputTokens;
        sums.set(pick(r)!, s);
      }
      return sums;
    };
    const byClient = await readUsage(source, { days: 2, by: 'client', now: Date.now() });
    expect(n).toBe(40);
    expect(total(byClient, (r) => r.client)).toEqual(sent);
    expect(new Set(byClient.map((r) => r.clientId))).toEqual(new Set(CLIENTS.map((c) => clientId(c.token))));

    // By key: each key counts the calls the fakes saw with it, and the tokens the fake reported for them
    const calls = proxies.flatMap((h) => h.fake.calls);
    expect(calls).toHaveLength(n); // one call per request: the key a request counts under is its call's
    const expected = new Map<string, { requests: number; errors: number; input: number; output: number }>();
    for (const call of calls) {
      const id = keyId(call.key!);
      const kind = kindOf(call);
      const s = expected.get(id) ?? { requests: 0, errors: 0, input: 0, output: 0 };
      s.requests++;
      if (kind === 'bad') s.errors++;
      s.input += tokensOf.get(kind)?.input ?? 0;
      s.output += tokensOf.get(kind)?.output ?? 0;
      expected.set(id, s);
    }
    const byKey = await readUsage(source, { days: 2, by: 'key', now: Date.now() });
    expect(total(byKey, (r) => r.key)).toEqual(expected);
    expect(expected.size).toBe(2);

    // The CLI's JSON is the same rows: `usage --json` (the real CLI, on a config naming the table), and
    // `keys list` shows each key's count today
    const dir = tempDir('usage-cli-');
    const config = {
      client_tokens: CLIENTS.map((c) => ({ token: c.token, name: c.name })),
      groups: [{ name: 'primary', api_keys: USED_KEYS }],
      state: { store: 'dynamodb', endpoint: engine.endpoint, table: engine.table },
    };
    writeFileSync(join(dir, 'config.yaml'), JSON.stringify(config));
    const cliEnv = { env: { AWS_REGION: 'us-east-1' }, cwd: dir };
    const usage = await cli.run(['usage', '--json', '--days', '2', '--by', 'client'], cliEnv);
    expect(usage.code).toBe(0);
    expect(JSON.parse(usage.stdout)).toEqual(byClient);
    expect(JSON.parse(await usageCommand({ days: 2, by: 'client', json: true }, source))).toEqual(byClient);
    const listed = await cli.run(['keys', 'list', '--json'], cliEnv);
    expect(listed.code).toBe(0);
    const today = JSON.parse(listed.stdout) as {
      keys: Array<{ keyId: string; today: { requests: number } }>;
    };
    const todays = await readUsage(source, { days: 1, by: 'key', now: Date.now() });
    expect(today.keys).toHaveLength(2);
    for (const k of today.keys) {
      expect(k.today.requests).toBe(todays.find((r) => r.key === k.keyId)?.requests ?? 0);
    }
    const tokensListed = await cli.run(['tokens', 'list', '--json'], cliEnv);
    const lastUsed = (JSON.parse(tokensListed.stdout) as { tokens: Array<{ lastUsed: string | null }> })
      .tokens;
    expect(lastUsed.map((t) => t.lastUsed)).toEqual(CLIENTS.map(() => byClient.at(-1)!.day));
    cli.expectNoLeaks(SECRETS);

    // One item per day × client × key × model, holding ids and names only
    const items = (
      (await testClient(engine.endpoint).send(new ScanCommand({ TableName: engine.table }))).Items ?? []
    ).map((i) => unmarshall(i));
    const usageItems = items.filter((i) => String(i.pk).startsWith('usage#'));
    expect(usageItems.length).toBeLessThanOrEqual(2 * 2 * 2); // days × clients × keys, one model
    expect(usageItems.reduce((sum, i) => sum + Number(i.req), 0)).toBe(n);
    for (const item of usageItems) {
      expect(item).toMatchObject({ name: expect.stringMatching(/^(alice|bob)$/), ttl: expect.any(Number) });
    }
    const stored = JSON.stringify(items);
    expect(SECRETS.filter((s) => stored.includes(s))).toEqual([]);

    // The request lines name the client, never its token
    for (const h of proxies) {
      const lines = h.logs.map((l) => JSON.parse(l)).filter((l) => l.message === 'request');
      expect(lines).toHaveLength(n / 2);
      expect(new Set(lines.map((l) => l.client))).toEqual(new Set(['alice', 'bob']));
      expect(leaks(h, SECRETS)).toEqual([]);
    }
  });

  it('counts requests without a client token under client "-", and unnamed clients by id', async () => {
    // Prepare: one proxy without tokens, one with a token that has no name
    const open = await proxy([], { allow_unauthenticated: true });
    const unnamed = 'usage-token-unnamed-333';
    const named = await proxy([unnamed]);
    try {
      // Act
      expect((await send(open, 'chat', undefined))[0]).toBe(200);
      expect((await send(named, 'chat', unnamed))[0]).toBe(200);
      expect((await send(named, 'chat', 'not-a-token'))[0]).toBe(401);
    } finally {
      await open.close();
      await named.close();
    }

    // Assess: the 401 (refused before forwarding) is not counted
    const source = new DynamoDbUsageSource(testClient(engine.endpoint), engine.table);
    const rows = await readUsage(source, { days: 2, by: 'client', now: Date.now() });
    const requests = (id: string) =>
      rows.filter((r) => r.clientId === id).reduce((s, r) => s + r.requests, 0);
    expect(requests('-')).toBe(1);
    expect(requests(clientId(unnamed))).toBe(1);
    expect(rows.find((r) => r.clientId === clientId(unnamed))?.client).toBe(clientId(unnamed));
    const line = named.logs
      .map((l) => JSON.parse(l))
      .find((l) => l.message === 'request' && l.status === 200);
    expect(line.client).toBe(clientId(unnamed));
    expect(leaks(named, [unnamed])).toEqual([]);
  });
});
