import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { ListTablesCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { testClient } from '../support/dynamo-engine.js';
import { type FakeGemini, startFakeGemini } from '../support/fake-gemini.js';
import { tempDirs } from '../support/temp-dir.js';

const TSX = join(process.cwd(), 'node_modules', '.bin', 'tsx');
const KEY = 'fake-key-cli-000001';
const TOKEN = 'cli-client-token';
const tempDir = tempDirs();
/** The servers' TMPDIR, where tsx keeps its cache and IPC pipes, so that they go with the other temp dirs. */
let childTmp: string;

interface Started {
  readonly child: ChildProcess;
  readonly url: string;
  readonly output: string[];
}

/** Runs `lambda/local/server.ts` as `npm start` does, in a directory of its own; stopped when the test ends. */
function run(env: Record<string, string>, cwd: string): ChildProcess {
  const child = spawn(TSX, [join(process.cwd(), 'lambda/local/server.ts')], {
    cwd,
    env: { PATH: process.env.PATH ?? '', TMPDIR: childTmp, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  onTestFinished(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    await exited;
  });
  return child;
}

async function start(env: Record<string, string>, cwd: string): Promise<Started> {
  const child = run(env, cwd);
  const output: string[] = [];
  const lines = createInterface({ input: child.stdout! });
  for await (const line of lines) {
    output.push(line);
    const parsed = JSON.parse(line) as { message: string; url?: string };
    if (parsed.message === 'listening') {
      lines.on('line', (l) => output.push(l));
      return { child, url: parsed.url!, output };
    }
  }
  throw new Error('server exited before listening');
}

async function failure(
  env: Record<string, string>,
  cwd: string,
): Promise<{ code: number | null; stderr: string }> {
  const child = run(env, cwd);
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code, stderr };
}

describe('E2E: npm start (lambda/local/server.ts)', () => {
  let fake: FakeGemini;
  let dir: string;

  beforeAll(async () => {
    fake = await startFakeGemini({ keys: [KEY] });
    childTmp = tempDir('gp-cli-tmp-');
    dir = tempDir('gp-cli-');
  });
  afterAll(async () => {
    await fake.close();
  });

  it('serves with CLIENT_TOKENS and PORT from env, then shuts down gracefully on SIGTERM', async () => {
    // Prepare: a config file only to point the group at the fake; keys and token come from env
    writeFileSync(
      join(dir, 'config.yaml'),
      `groups:\n  - name: g\n    api_keys: [${KEY}]\n    target_url: ${fake.openAiBase}\n` +
        // The model list is read from the fake too: nothing leaves 127.0.0.1.
        `upstream:\n  native_base_url: ${fake.url}\n`,
    );
    fake.options.streamChunkDelayMs = 100;
    const server = await start({ CLIENT_TOKENS: TOKEN, PORT: '0' }, dir);

    // Act: start a slow stream, then ask the server to stop while it is in flight
    const res = await fetch(`${server.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        model: 'gemini-2.5-flash',
        messages: [{ role: 'user', content: 'x' }],
        stream: true,
      }),
    });
    const stopAsked = Date.now();
    server.child.kill('SIGTERM');
    const text = await res.text();
    const [code] = (await once(server.child, 'exit')) as [number | null];

    // Assess: the in-flight stream completed, the process exited cleanly and promptly, nothing secret was logged
    expect(res.status).toBe(200);
    expect(Date.now() - stopAsked).toBeLessThan(3000);
    expect(text).toContain('data: [DONE]');
    expect(code).toBe(0);
    const logs = server.output.join('\n');
    expect(logs).toContain('"message":"shutting down"');
    expect(logs).not.toContain(KEY);
    expect(logs).not.toContain(TOKEN);
  });

  it('runs on a DynamoDB engine given by DYNAMODB_ENDPOINT, creating its table', async () => {
    // Prepare: a bare engine with no table yet
    const { default: dynalite } = await import('dynalite');
    const engine = dynalite({ createTableMs: 0 });
    await new Promise<void>((resolve) => engine.listen(0, '127.0.0.1', resolve));
    const endpoint = `http://127.0.0.1:${engine.address().port}`;
    const ddb = tempDir('gp-cli-ddb-');
    writeFileSync(
      join(ddb, 'config.yaml'),
      `client_tokens: [${TOKEN}]\ngroups:\n  - name: g\n    api_keys: [${KEY}]\n    target_url: ${fake.openAiBase}\n` +
        `upstream:\n  native_base_url: ${fake.url}\n`,
    );
    try {
      // Act
      const server = await start({ DYNAMODB_ENDPOINT: endpoint, TABLE_NAME: 'cli-table', PORT: '0' }, ddb);
      const res = await fetch(`${server.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'gemini-2.5-flash', messages: [{ role: 'user', content: 'x' }] }),
      });
      server.child.kill('SIGTERM');
      await once(server.child, 'exit');

      // Assess
      expect(res.status).toBe(200);
      const tables = await testClient(endpoint).send(new ListTablesCommand({}));
      expect(tables.TableNames).toContain('cli-table');
      expect(server.output.join('\n')).toContain('"message":"state table ready"');
    } finally {
      const closed = new Promise<void>((resolve) => engine.close(() => resolve()));
      engine.closeAllConnections();
      await closed;
    }
  });

  it('refuses to start on an invalid config, naming the field and not the key', async () => {
    const bad = tempDir('gp-cli-bad-');
    writeFileSync(
      join(bad, 'config.yaml'),
      `client_tokens: [${TOKEN}]\ngroups:\n  - name: a\n    api_keys: [${KEY}]\n  - name: b\n    api_keys: []\n`,
    );
    const { code, stderr } = await failure({}, bad);
    expect(code).toBe(1);
    expect(stderr).toContain('groups[1].api_keys: expected at least 1 item');
    expect(stderr).not.toContain(KEY);
    expect(stderr).not.toContain(TOKEN);
  });

  it('refuses to run without client tokens on a non-loopback host', async () => {
    const open = tempDir('gp-cli-open-');
    writeFileSync(
      join(open, 'config.yaml'),
      'server: { allow_unauthenticated: true }\ngroups: [{ name: a, api_keys: [k] }]\n',
    );
    const { code, stderr } = await failure({ HOST: '0.0.0.0' }, open);
    expect(code).toBe(1);
    expect(stderr).toContain(
      'server.allow_unauthenticated: only allowed when server.host is a loopback address',
    );
  });

  it('explains how to configure when nothing is configured', async () => {
    const empty = tempDir('gp-cli-empty-');
    const { code, stderr } = await failure({}, empty);
    expect(code).toBe(1);
    expect(stderr).toContain('GEMINI_API_KEYS');
  });
});
