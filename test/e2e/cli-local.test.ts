import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keyId } from '../../lambda/core/credentials.js';
import { CliOutputs } from '../support/cli-runner.js';
import { type FakeGemini, startFakeGemini } from '../support/fake-gemini.js';
import { chatStatus, withinReload } from '../support/reload-wait.js';
import { tempDirs } from '../support/temp-dir.js';

const TSX = join(process.cwd(), 'node_modules', '.bin', 'tsx');
const KEY = 'AIzaSyCliE2eKey-000000000000000000001';
const NEW_KEY = 'AIzaSyCliE2eKey-000000000000000000002';
const TOKEN = 'cli-e2e-first-client-token';
const tempDir = tempDirs();
const cli = new CliOutputs();

/** A running `npm start` and the CLI editing its config file: every change lands without a restart. */
describe('E2E: the CLI on the config file of a running local server', () => {
  let fake: FakeGemini;
  let server: ChildProcess;
  const output: string[] = [];
  let url: string;
  let dir: string;
  let path: string;
  let tmp: string;
  const gp = (argv: string[], stdin?: string) =>
    cli.run(['--config', path, ...argv], { cwd: dir, env: {}, stdin });

  const chat = (token: string) => chatStatus(url, token);

  /** Which configured keys `n` requests reach at the fake. */
  const keysServing = async (n: number) => {
    fake.reset();
    for (let i = 0; i < n; i++) expect(await chat(TOKEN)).toBe(200);
    return new Set(fake.calls.filter((c) => c.path.endsWith('/chat/completions')).map((c) => c.key));
  };

  beforeAll(async () => {
    fake = await startFakeGemini({ keys: [KEY, NEW_KEY] });
    dir = tempDir('gp-cli-e2e-');
    tmp = tempDir('gp-cli-e2e-tmp-');
    path = join(dir, 'config.yaml');
    writeFileSync(
      path,
      `# Local proxy for the team\nclient_tokens:\n  - ${TOKEN} # bootstrap\n` +
        `groups:\n  - name: g\n    api_keys:\n      - ${KEY}\n    target_url: ${fake.openAiBase}\n` +
        `upstream:\n  native_base_url: ${fake.url}\n  model_list_ms: 0\n`,
    );
    server = spawn(TSX, [join(process.cwd(), 'lambda/local/server.ts')], {
      cwd: dir,
      env: { PATH: process.env.PATH ?? '', TMPDIR: tmp, CONFIG_PATH: path, PORT: '0' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    createInterface({ input: server.stdout! }).on('line', (line) => output.push(line));
    await withinReload(() => output.some((l) => l.includes('"message":"listening"')));
    url = (JSON.parse(output.find((l) => l.includes('"message":"listening"'))!) as { url: string }).url;
  }, 30_000);
  afterAll(async () => {
    if (server.exitCode === null && server.signalCode === null) {
      const exited = once(server, 'exit');
      server.kill('SIGTERM');
      await exited;
    }
    await fake.close();
  });

  it('tokens create: the server accepts the new token within the reload time; tokens revoke: 401', async () => {
    // Act: as an operator does it, through the command itself
    const created = await cli.spawn(['--config', path, 'tokens', 'create', '--name', 'e2e'], {
      cwd: dir,
      tmpdir: tmp,
    });
    const token = created.stdout.trim();
    await withinReload(async () => (await chat(token)) === 200);
    const revoked = await gp(['tokens', 'revoke', 'e2e']);
    await withinReload(async () => (await chat(token)) === 401);

    // Assess: one server process all along
    expect([created.code, revoked.code]).toEqual([0, 0]);
    expect(server.exitCode).toBeNull();
    expect(output.filter((l) => l.includes('"message":"listening"'))).toHaveLength(1);
    expect(await chat(TOKEN)).toBe(200);
  });

  it('keys add from stdin: the new key serves; keys disable: the disabled key no longer does', async () => {
    // Act
    const added = await gp(['keys', 'add', '--group', 'g'], `${NEW_KEY}\n`);
    await withinReload(async () => (await keysServing(4)).has(NEW_KEY));
    const disabled = await gp(['keys', 'disable', keyId(KEY)]);
    await withinReload(async () => !(await keysServing(4)).has(KEY));

    // Assess
    expect([added.code, disabled.code]).toEqual([0, 0]);
    expect(await keysServing(6)).toEqual(new Set([NEW_KEY]));
  });

  it('an invalid edit of the file leaves the server serving, and the CLI refuses to edit it further', async () => {
    // Prepare
    const good = readFileSync(path, 'utf8');

    // Act: a hand edit that breaks the file
    writeFileSync(path, `${good}policy: { max_attempts: 0 }\n`);
    await withinReload(() => output.some((l) => l.includes('config rejected')));
    const refused = await gp(['tokens', 'create', '--name', 'late']);

    // Assess
    expect(await chat(TOKEN)).toBe(200);
    expect(refused.code).toBe(1);
    expect(refused.stdout).toBe('');
    expect(refused.stderr).toContain('policy.max_attempts');
    const logs = output.join('\n');
    for (const secret of [KEY, NEW_KEY, TOKEN, ...cli.createdTokens()]) expect(logs).not.toContain(secret);
  });
});

afterAll(() => {
  cli.expectNoLeaks([KEY, NEW_KEY, TOKEN, ...cli.createdTokens()]);
});
