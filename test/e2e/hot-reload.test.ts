import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FakeGemini, startFakeGemini } from '../support/fake-gemini.js';
import { chatStatus, withinReload } from '../support/reload-wait.js';
import { tempDirs } from '../support/temp-dir.js';

const TSX = join(process.cwd(), 'node_modules', '.bin', 'tsx');
const KEY = 'fake-key-watch-000001';
const TOKEN = 'watch-client-token-1';
const NEW_TOKEN = 'watch-client-token-2';
const tempDir = tempDirs();

/** `npm start` in a process of its own, watching its config file: what the in-process tests can't show. */
describe('E2E: npm start reloads its config file', () => {
  let fake: FakeGemini;
  let child: ChildProcess;
  const output: string[] = [];
  let url: string;
  let path: string;

  const yaml = (tokens: string[]) =>
    `client_tokens: [${tokens.join(', ')}]\n` +
    `groups:\n  - name: g\n    api_keys: [${KEY}]\n    target_url: ${fake.openAiBase}\n` +
    `upstream:\n  native_base_url: ${fake.url}\n`;

  const chat = (token: string) => chatStatus(url, token);

  beforeAll(async () => {
    fake = await startFakeGemini({ keys: [KEY] });
    const dir = tempDir('gp-watch-');
    path = join(dir, 'proxy.yaml');
    writeFileSync(path, yaml([TOKEN]));
    child = spawn(TSX, [join(process.cwd(), 'lambda/local/server.ts')], {
      cwd: dir,
      env: { PATH: process.env.PATH ?? '', TMPDIR: tempDir('gp-watch-tmp-'), CONFIG_PATH: path, PORT: '0' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => output.push(line));
    await withinReload(() => output.some((l) => l.includes('"message":"listening"')));
    url = (JSON.parse(output.find((l) => l.includes('"message":"listening"'))!) as { url: string }).url;
  }, 30_000);
  afterAll(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      await exited;
    }
    await fake.close();
  });

  it('takes a new token, keeps serving through an invalid edit, and drops a removed token', async () => {
    // Act: an editor's save (write beside, rename over)
    writeFileSync(`${path}.tmp`, yaml([TOKEN, NEW_TOKEN]));
    renameSync(`${path}.tmp`, path);
    await withinReload(async () => (await chat(NEW_TOKEN)) === 200);

    // Act: an invalid edit
    writeFileSync(path, `${yaml([TOKEN])}policy: { max_attempts: many }\n`);
    await withinReload(() => output.some((l) => l.includes('config rejected')));

    // Assess: still the last good configuration, PORT from the environment still in force
    expect(await chat(NEW_TOKEN)).toBe(200);
    const rejected = JSON.parse(output.find((l) => l.includes('config rejected'))!) as { problem: string };
    expect(rejected.problem).toContain('policy.max_attempts');

    // Act: the token removed
    writeFileSync(path, yaml([TOKEN]));
    await withinReload(async () => (await chat(NEW_TOKEN)) === 401);

    // Assess
    expect(await chat(TOKEN)).toBe(200);
    const logs = output.join('\n');
    expect(logs).not.toContain('takes effect on restart');
    for (const secret of [KEY, TOKEN, NEW_TOKEN]) expect(logs).not.toContain(secret);
  });
});
