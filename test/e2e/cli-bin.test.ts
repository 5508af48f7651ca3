import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { keyId } from '../../lambda/core/credentials.js';
import { CliOutputs } from '../support/cli-runner.js';
import { tempDirs } from '../support/temp-dir.js';

const KEY = 'AIzaSyBinTestKey-0000000000000000001';
const NEW_KEY = 'AIzaSyBinTestKey-0000000000000000002';
const TOKEN = 'bin-test-plain-token-000001';
const tempDir = tempDirs();
const cli = new CliOutputs();

describe('E2E: the gemini-proxy command (bin/gemini-proxy-cli.mjs)', () => {
  let dir: string;
  let tmp: string;
  const gp = (argv: string[], stdin?: string) => cli.spawn(argv, { cwd: dir, tmpdir: tmp, stdin });

  beforeAll(() => {
    tmp = tempDir('gp-bin-tmp-');
    dir = tempDir('gp-bin-');
    writeFileSync(
      join(dir, 'config.yaml'),
      `# local proxy\nclient_tokens: [${TOKEN}]\ngroups:\n  - name: g\n    api_keys: [${KEY}] # first key\n`,
    );
  });

  it("npx gemini-proxy --help runs the package's own bin from the repository root", async () => {
    // Act: as an operator would after `npm ci` (npm exec finds the root package's bin)
    const { stdout } = await promisify(execFile)('npx', ['--no-install', 'gemini-proxy', '--help'], {
      cwd: process.cwd(),
      env: { ...process.env, TMPDIR: tmp },
    });

    // Assess
    expect(stdout).toContain('Usage: gemini-proxy');
    expect(stdout).toMatch(/keys\s+list, add, remove/);
  });

  it('prints help with exit 0, and a usage error on stderr with exit 2', async () => {
    // Act
    const [help, usage] = await Promise.all([
      gp(['tokens', '--help']),
      gp(['tokens', 'create', '--rpm', 'x']),
    ]);

    // Assess
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('create [options]');
    expect(usage.code).toBe(2);
    expect(usage.stdout).toBe('');
    expect(usage.stderr).toContain(
      "option '--rpm <n>' argument 'x' is invalid. expected a positive whole number",
    );
  });

  it('tokens create: stdout is the token alone (TOKEN=$(gemini-proxy tokens create …) works); the file keeps only its hash', async () => {
    // Act
    const created = await gp(['tokens', 'create', '--name', 'ci']);

    // Assess
    expect(created.code).toBe(0);
    expect(created.stdout).toMatch(/^gp-[A-Za-z0-9_-]{43}\n$/);
    const token = created.stdout.trim();
    const text = readFileSync(join(dir, 'config.yaml'), 'utf8');
    expect(text).not.toContain(token);
    expect(text).toContain('# first key');
    expect(parse(text).client_tokens[1]).toMatchObject({
      name: 'ci',
      sha256: expect.stringMatching(/^[0-9a-f]{64}$/),
    });
    expect(created.stderr).toContain(`created token ci (id ${keyId(token)})`);
  });

  it('keys add reads the keys from a real stdin pipe; a failure exits 1', async () => {
    // Act
    const added = await gp(['keys', 'add', '--group', 'g'], `${NEW_KEY}\n`);
    const listed = await gp(['--json', 'keys', 'list']);
    const reset = await gp(['keys', 'reset', keyId(KEY)]);

    // Assess
    expect(added.code).toBe(0);
    expect(JSON.parse(listed.stdout).keys.map((k: { key: string }) => k.key)).toEqual([
      'AIza…0001',
      'AIza…0002',
    ]);
    expect(reset.code).toBe(1);
    expect(reset.stderr).toMatch(/^gemini-proxy: reset needs shared state/);
  });
});

afterAll(() => {
  cli.expectNoLeaks([KEY, NEW_KEY, TOKEN, ...cli.createdTokens()]);
});
