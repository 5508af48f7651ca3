import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { loadConfig } from '../../lambda/adapters/config-loader.js';
import { DynamoDbKeyStateStore } from '../../lambda/adapters/state/dynamodb/store.js';
import { configuredTokens } from '../../lambda/core/config/derived.js';
import { parseConfig } from '../../lambda/core/config/parse.js';
import { keyId, TokenVerifier } from '../../lambda/core/credentials.js';
import { buildGroup } from '../../lambda/core/forwarding/groups.js';
import { CliOutputs } from '../support/cli-runner.js';
import { type DynamoEngine, startDynamoEngine, testClient } from '../support/dynamo-engine.js';
import { type FakeGemini, startFakeGemini } from '../support/fake-gemini.js';
import { tempDirs } from '../support/temp-dir.js';

const KEYS = [
  'AIzaSyLocalKey-000000000000000000001',
  'AIzaSyLocalKey-000000000000000000002',
  'AIzaSyLocalKey-000000000000000000003',
];
const NEW_KEYS = ['AIzaSyNewKey-00000000000000000000001', 'AIzaSyNewKey-00000000000000000000002'];
const PLAIN_TOKEN = 'plain-client-token-0123456789';
const tempDir = tempDirs();
const cli = new CliOutputs();

const CONFIG = `# The team's proxy
server:
  port: 8081 # keep this port
client_tokens:
  - ${PLAIN_TOKEN} # the old shared token
groups:
  # Main pool
  - name: primary
    api_keys:
      - ${KEYS[0]}
      - { key: ${KEYS[1]}, project: proj-a } # billing project A
    limits: { rpm: 10 }
  - name: backup
    api_keys: [${KEYS[2]}]
`;

describe('CLI on a local config file', () => {
  let dir: string;
  let path: string;
  const gp = (...argv: string[]) => cli.run(argv, { cwd: dir, env: {} });
  const gpIn = (stdin: string, ...argv: string[]) => cli.run(argv, { cwd: dir, env: {}, stdin });
  const file = () => readFileSync(path, 'utf8');

  beforeEach(() => {
    dir = tempDir('gp-cli-local-');
    path = join(dir, 'config.yaml');
    writeFileSync(path, CONFIG);
  });

  it('checks an edit as the server reads the file: with its environment overrides (CLIENT_TOKENS)', async () => {
    // Prepare: a file with no tokens of its own, served with CLIENT_TOKENS
    writeFileSync(path, `groups:\n  - name: primary\n    api_keys: [${KEYS[0]}]\n`);
    const env = { CLIENT_TOKENS: 'env-token-for-the-server-0001' };

    // Act
    const withEnv = await cli.run(['keys', 'add', '--group', 'primary'], {
      cwd: dir,
      env,
      stdin: `${KEYS[1]}\n`,
    });
    const without = await gpIn(`${KEYS[2]}\n`, 'keys', 'add', '--group', 'primary');

    // Assess: taken with the override; refused without it (the server would not start), naming the field
    expect(withEnv.code).toBe(0);
    expect(without.code).toBe(1);
    expect(without.stderr).toContain('client_tokens');
    expect(file()).toContain(KEYS[1]!);
    expect(file()).not.toContain(KEYS[2]!);
  });

  it('refuses to edit keys through a YAML alias, rather than replace the list', async () => {
    writeFileSync(
      path,
      `client_tokens: [${PLAIN_TOKEN}]\ngroups:\n  - name: a\n    api_keys: &shared [${KEYS[0]}, ${KEYS[1]}]\n  - name: b\n    api_keys: *shared\n`,
    );
    const before = file();
    const added = await gpIn(`${KEYS[2]}\n`, 'keys', 'add', '--group', 'b');
    expect(added.code).toBe(1);
    expect(added.stderr).toContain('api_keys is a YAML alias');
    expect(file()).toBe(before);
    // Read through the alias: both groups' keys are listed
    const listed = await gp('keys', 'list', '--json');
    expect(listed.code).toBe(0);
    const groups = (JSON.parse(listed.stdout) as { keys: Array<{ group: string }> }).keys.map((k) => k.group);
    expect(groups).toEqual(['a', 'a', 'b', 'b']);
  });

  it('tokens create prints the token alone, stores only its hash with name, rpm and time, and keeps comments', async () => {
    // Act
    const created = await gp('tokens', 'create', '--name', 'ci-bot', '--rpm', '30');

    // Assess: stdout is the token and nothing else; the file has its hash, the proxy accepts the token
    expect(created.code).toBe(0);
    const token = created.stdout.trim();
    expect(created.stdout).toBe(`${token}\n`);
    expect(token).toMatch(/^gp-[A-Za-z0-9_-]{43}$/);
    expect(file()).not.toContain(token);
    expect(file()).toContain('# keep this port');
    expect(file()).toContain('# the old shared token');
    expect(file()).toContain('# billing project A');
    const stored = parse(file()).client_tokens[1];
    expect(Object.keys(stored)).toEqual(['name', 'sha256', 'rpm', 'created']);
    expect(stored).toMatchObject({ name: 'ci-bot', rpm: 30 });
    expect(Date.parse(stored.created)).toBeGreaterThan(Date.now() - 60_000);
    const verifier = new TokenVerifier(configuredTokens(loadConfig({ CONFIG_PATH: path })));
    const client = verifier.verify(token);
    expect(client).toMatchObject({ name: 'ci-bot', rpm: 30 });
    expect(created.stderr).toContain(`id ${client?.clientId}`);
  });

  it('tokens list shows names and the ids the proxy logs, never a token; --json has the same rows', async () => {
    // Prepare
    const token = (await gp('tokens', 'create', '--name', 'alice')).stdout.trim();
    const aliceId = new TokenVerifier([{ token, rpm: undefined }]).verify(token)!.clientId;
    const plainId = keyId(PLAIN_TOKEN);

    // Act
    const table = await gp('tokens', 'list');
    const json = await gp('tokens', 'list', '--json');

    // Assess
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(new RegExp(`-\\s+${plainId}\\s+-\\s+-\\s+plain`));
    expect(table.stdout).toMatch(new RegExp(`alice\\s+${aliceId}\\s+-\\s+\\d{4}-`));
    expect(JSON.parse(json.stdout).tokens).toEqual([
      { name: null, id: plainId, rpm: null, created: null, stored: 'plain', lastUsed: null },
      {
        name: 'alice',
        id: aliceId,
        rpm: null,
        created: expect.any(String),
        stored: 'sha256',
        lastUsed: null,
      },
    ]);
  });

  it('tokens revoke removes a token by name or by id, and refuses what matches nothing without echoing it', async () => {
    // Prepare
    await gp('tokens', 'create', '--name', 'one');
    const two = (await gp('tokens', 'create', '--name', 'two')).stdout.trim();
    const twoId = keyId(two);

    // Act
    const byName = await gp('tokens', 'revoke', 'one');
    const byId = await gp('tokens', 'revoke', twoId);
    const missing = await gp('tokens', 'revoke', two);

    // Assess
    expect([byName.code, byId.code, missing.code]).toEqual([0, 0, 1]);
    expect(parse(file()).client_tokens).toEqual([PLAIN_TOKEN]);
    expect(missing.stderr).toContain('no token has that name or id');
  });

  it('refuses a duplicate token name (1), a bad name or rpm (2), and an edit that leaves no token (1, file untouched)', async () => {
    // Prepare
    await gp('tokens', 'create', '--name', 'dup');
    const before = file();

    // Act
    const dup = await gp('tokens', 'create', '--name', 'dup');
    const badName = await gp('tokens', 'create', '--name', 'has space');
    const badRpm = await gp('tokens', 'create', '--name', 'x', '--rpm', '0');
    await gp('tokens', 'revoke', 'dup');
    const last = await gp('tokens', 'revoke', keyId(PLAIN_TOKEN));

    // Assess
    expect([dup.code, badName.code, badRpm.code, last.code]).toEqual([1, 2, 2, 1]);
    expect(file()).not.toBe(before);
    expect(last.stderr).toContain('client_tokens: expected at least 1 token');
    expect(parse(file()).client_tokens).toEqual([PLAIN_TOKEN]);
  });

  it('keys add reads stdin, one key per line (blank lines and comments skipped), and prints masked keys only', async () => {
    // Act
    const added = await gpIn(
      `${NEW_KEYS[0]}\n\n# from the new project\n${NEW_KEYS[1]}\n`,
      'keys',
      'add',
      '--group',
      'backup',
      '--project',
      'proj-b',
    );

    // Assess
    expect(added.code).toBe(0);
    expect(added.stderr).toContain(`added ${keyId(NEW_KEYS[0]!)} (AIza…0001) to group backup`);
    const config = parseConfig(parse(file()));
    expect(config.groups[1]!.api_keys).toEqual([
      KEYS[2],
      { key: NEW_KEYS[0], project: 'proj-b' },
      { key: NEW_KEYS[1], project: 'proj-b' },
    ]);
    expect(file()).toContain('# Main pool');
  });

  it('keys add refuses duplicates (configured, or given twice), bad lines, empty input and unknown groups; nothing is written', async () => {
    // Prepare
    const before = file();

    // Act
    const configured = await gpIn(`${NEW_KEYS[0]}\n${KEYS[1]}\n`, 'keys', 'add', '--group', 'primary');
    const twice = await gpIn(`${NEW_KEYS[0]}\n${NEW_KEYS[0]}\n`, 'keys', 'add', '--group', 'primary');
    const badLine = await gpIn(`${NEW_KEYS[0]}\nnot a key\n`, 'keys', 'add', '--group', 'primary');
    const empty = await gpIn('\n# nothing\n', 'keys', 'add', '--group', 'primary');
    const unknown = await gpIn(`${NEW_KEYS[0]}\n`, 'keys', 'add', '--group', 'nope');
    const created = await gpIn(`${NEW_KEYS[0]}\n`, 'keys', 'add', '--group', 'fresh', '--create');

    // Assess
    expect([configured.code, twice.code, badLine.code, empty.code, unknown.code]).toEqual([1, 1, 1, 1, 1]);
    expect(configured.stderr).toContain(`${keyId(KEYS[1]!)} (already in group primary)`);
    expect(twice.stderr).toContain(`${keyId(NEW_KEYS[0]!)} (given twice)`);
    expect(badLine.stderr).toContain('line 2 is not a key');
    expect(unknown.stderr).toContain('no group named nope (groups: primary, backup)');
    expect(created.code).toBe(0);
    // Only the new group was added, at the end (flow lists are written `[ a ]` by the YAML library).
    expect(file()).toMatch(/# Main pool[\s\S]*name: backup[\s\S]*name: fresh/);
    expect(parse(file()).groups).toEqual([
      ...parse(before).groups,
      { name: 'fresh', api_keys: [NEW_KEYS[0]] },
    ]);
  });

  it('keys remove takes ids (or a unique prefix), never a key, and will not empty a group', async () => {
    // Act
    const asKey = await gp('keys', 'remove', KEYS[0]!);
    const emptying = await gp('keys', 'remove', keyId(KEYS[2]!));
    const removed = await gp('keys', 'remove', keyId(KEYS[0]!).slice(0, 8), '--json');

    // Assess
    expect(asKey.code).toBe(2);
    expect(asKey.stderr).toContain('argument 1 is not a key id');
    expect(emptying.code).toBe(1);
    expect(emptying.stderr).toContain('would leave group backup without keys');
    expect(removed.code).toBe(0);
    expect(JSON.parse(removed.stdout)).toEqual({ removed: [{ group: 'primary', keyId: keyId(KEYS[0]!) }] });
    expect(parse(file()).groups[0].api_keys).toEqual([{ key: KEYS[1], project: 'proj-a' }]);
  });

  it('without a shared table, disable/enable set and lift disabled: true (out of rotation), and reset fails clearly', async () => {
    // Act
    const disabled = await gp('keys', 'disable', keyId(KEYS[1]!), '--reason', 'billing');
    const flagged = parse(file()).groups[0].api_keys[1];
    const listed = await gp('keys', 'list', '--json');
    const rotation = buildGroup(parseConfig(parse(file())).groups[0]!, parseConfig(parse(file())).upstream);
    const enabled = await gp('keys', 'enable', keyId(KEYS[1]!));
    const reset = await gp('keys', 'reset', keyId(KEYS[1]!));

    // Assess
    expect(disabled.code).toBe(0);
    expect(flagged).toEqual({ key: KEYS[1], project: 'proj-a', disabled: true });
    expect(JSON.parse(listed.stdout).keys[1]).toMatchObject({ status: 'disabled', disabledIn: 'config' });
    expect(rotation.keyIds).toEqual([keyId(KEYS[0]!)]);
    expect(enabled.code).toBe(0);
    expect(parse(file())).toEqual(parse(CONFIG));
    expect(file()).toContain(
      '{ key: AIzaSyLocalKey-000000000000000000002, project: proj-a } # billing project A',
    );
    expect(reset.code).toBe(1);
    expect(reset.stderr).toContain('reset needs shared state');
  });

  it('keys list masks every key, in the table and in --json', async () => {
    // Act
    const table = await gp('keys', 'list');
    const json = await gp('keys', 'list', '--json');

    // Assess
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(
      new RegExp(`primary\\s+${keyId(KEYS[1]!)}\\s+AIza…0002\\s+proj-a\\s+unknown`),
    );
    const { keys } = JSON.parse(json.stdout) as { keys: Array<Record<string, unknown>> };
    expect(keys.map((k) => k.key)).toEqual(['AIza…0001', 'AIza…0002', 'AIza…0003']);
    expect(keys[0]).toEqual({
      group: 'primary',
      keyId: keyId(KEYS[0]!),
      key: 'AIza…0001',
      project: null,
      status: 'unknown',
      reason: null,
      disabledIn: null,
      cooling: [],
      lastCheck: null,
      today: null,
    });
  });

  it('answers usage errors with exit code 2', async () => {
    // Act
    const results = await Promise.all([
      gp('frobnicate'),
      gp('keys'),
      gp('keys', 'list', '--bogus'),
      gp('keys', 'add'),
      gp('--config', path, '--stack', 'S', 'keys', 'list'),
    ]);
    const help = await gp('keys', 'add', '--help');

    // Assess
    expect(results.map((r) => r.code)).toEqual([2, 2, 2, 2, 2]);
    expect(results[4]!.stderr).toContain('--config and --stack name different targets');
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('--group <name>');
  });
});

describe('CLI on a local config with a DynamoDB state table', () => {
  let engine: DynamoEngine;
  let dir: string;
  const gp = (...argv: string[]) => cli.run(argv, { cwd: dir, env: {} });

  beforeAll(async () => {
    engine = await startDynamoEngine();
    dir = tempDir('gp-cli-table-');
    writeFileSync(
      join(dir, 'config.yaml'),
      `${CONFIG}state:\n  store: dynamodb\n  endpoint: ${engine.endpoint}\n  table: ${engine.table}\n`,
    );
  });
  afterAll(async () => {
    await engine.close();
  });

  it('disable writes the operator switch and its note to the table; enable lifts it; the store reads both', async () => {
    // Prepare
    const store = new DynamoDbKeyStateStore({
      client: testClient(engine.endpoint),
      table: engine.table,
      cacheMs: 0,
      rotationShards: 1,
    });
    const id = keyId(KEYS[0]!);

    // Act
    const disabled = await gp('keys', 'disable', id, '--reason', 'billing alert');
    const viewDisabled = await store.describe('primary', [id]);
    const listed = JSON.parse((await gp('keys', 'list', '--json')).stdout).keys[0];
    const enabled = await gp('keys', 'enable', id);
    const viewEnabled = await store.describe('primary', [id]);

    // Assess
    expect([disabled.code, enabled.code]).toEqual([0, 0]);
    expect(viewDisabled[0]!.status).toBe('disabled');
    expect(listed).toMatchObject({ status: 'disabled', reason: 'billing alert', disabledIn: 'table' });
    expect(viewEnabled[0]!.status).toBe('active');
    expect(readFileSync(join(dir, 'config.yaml'), 'utf8')).not.toContain('disabled');
  });

  it('reset deletes every cooldown and park of the key (all models), and only that key', async () => {
    // Prepare
    const store = new DynamoDbKeyStateStore({
      client: testClient(engine.endpoint),
      table: engine.table,
      cacheMs: 0,
      rotationShards: 1,
    });
    const [a, b] = [keyId(KEYS[0]!), keyId(KEYS[1]!)];
    const until = Date.now() + 3_600_000;
    for (const [keyId, model, cause] of [
      [a, 'gemini-2.5-flash', 'rpm'],
      [a, 'gemini-2.5-pro', 'unavailable'],
      [b, 'gemini-2.5-flash', 'rpd'],
    ] as const)
      await store.record({ kind: 'cooldown', group: 'primary', keyId, model, cooldown: { until, cause } });
    // Limits learned from Gemini for each key's budget: a's go with the reset, b's stay
    for (const id of [a, b]) {
      const budget = `key:${id}`;
      const lesson = {
        group: 'primary',
        keyId: id,
        budget,
        model: 'gemini-2.5-flash',
        metric: 'rpm',
      } as const;
      await store.record({ kind: 'learned', ...lesson, limit: 5, until });
    }
    const before = JSON.parse((await gp('keys', 'list', '--json')).stdout).keys;
    // A running proxy's store that has read the cooldowns (as a warm instance has)
    const running = new DynamoDbKeyStateStore({
      client: testClient(engine.endpoint),
      table: engine.table,
      cacheMs: 0,
      rotationShards: 1,
    });
    const acquire = (s: DynamoDbKeyStateStore, model: string) =>
      s.acquire({
        group: 'primary',
        keys: [{ keyId: a, budget: `key:${a}` }],
        model,
        now: Date.now(),
        exclude: new Set(),
      });
    const cooling = await acquire(running, 'gemini-2.5-pro');
    const learnedBefore = await running.learned('primary', [`key:${a}`], Date.now());

    // Act
    const reset = await gp('keys', 'reset', a);
    const after = JSON.parse((await gp('keys', 'list', '--json')).stdout).keys;

    // Assess
    expect(before[0].cooling).toEqual([
      { model: 'gemini-2.5-flash', cause: 'rpm', until: expect.any(String) },
      { model: 'gemini-2.5-pro', cause: 'unavailable', until: expect.any(String) },
    ]);
    expect(reset.code).toBe(0);
    expect(reset.stderr).toContain(
      `cleared 3 cooldown(s), park(s) and learned limit(s) of ${a} in group primary`,
    );
    const learned = await store.learned('primary', [`key:${a}`, `key:${b}`], Date.now());
    expect(learned.map((l) => l.budget)).toEqual([`key:${b}`]);
    // A warm instance that had read a's learned limit lets it go at its next read, as it does the cooldowns
    expect(learnedBefore).toHaveLength(1);
    expect(await running.learned('primary', [`key:${a}`], Date.now())).toEqual([]);
    expect(after[0].cooling).toEqual([]);
    expect(after[1].cooling).toEqual([
      { model: 'gemini-2.5-flash', cause: 'rpd', until: expect.any(String) },
    ]);
    // Running stores drop what they had read at their next read: the table's word wins
    expect(cooling.kind).toBe('unavailable');
    expect((await acquire(running, 'gemini-2.5-pro')).kind).toBe('key');
    expect((await acquire(store, 'gemini-2.5-flash')).kind).toBe('key');
  });

  it('status counts keys by state per group and says the table answers', async () => {
    // Act
    const status = await gp('status', '--json');

    // Assess
    expect(status.code).toBe(0);
    const out = JSON.parse(status.stdout);
    expect(out.components).toEqual([
      { name: 'config', ok: true, detail: '2 group(s), 1 token(s)' },
      { name: 'state', ok: true, detail: `table ${engine.table}` },
      { name: 'state table', ok: true, detail: `table ${engine.table} reachable` },
    ]);
    expect(out.groups.map((g: { group: string; keys: number }) => [g.group, g.keys])).toEqual([
      ['primary', 2],
      ['backup', 1],
    ]);
  });
});

describe('CLI check on a local config (against the fake Gemini)', () => {
  let fake: FakeGemini;
  let engine: DynamoEngine;
  let dir: string;
  const gp = (...argv: string[]) => cli.run(argv, { cwd: dir, env: {} });
  const config = (state: string) =>
    `client_tokens: [${PLAIN_TOKEN}]\ngroups:\n  - name: g\n    api_keys: [${KEYS[0]}, ${KEYS[1]}]\n` +
    `    target_url: ${fake.openAiBase}\nupstream:\n  native_base_url: ${fake.url}\n${state}`;

  beforeAll(async () => {
    fake = await startFakeGemini({ keys: [KEYS[0]!, KEYS[1]!] });
    fake.killKey(KEYS[1]!, 'CONSUMER_SUSPENDED');
    engine = await startDynamoEngine();
    dir = tempDir('gp-cli-check-');
  });
  afterAll(async () => {
    await Promise.all([fake.close(), engine.close()]);
  });

  it('checks every configured key from here and shows each outcome; without a table nothing is stored', async () => {
    // Prepare
    writeFileSync(join(dir, 'config.yaml'), config(''));

    // Act
    const checked = await gp('check', '--json');
    const table = await gp('check');

    // Assess
    expect(checked.code).toBe(0);
    expect(JSON.parse(checked.stdout)).toEqual({
      target: expect.stringContaining('config.yaml'),
      stored: false,
      checks: [
        { group: 'g', keyId: keyId(KEYS[0]!), key: 'AIza…0001', outcome: 'valid', reason: null },
        {
          group: 'g',
          keyId: keyId(KEYS[1]!),
          key: 'AIza…0002',
          outcome: 'dead',
          reason: 'CONSUMER_SUSPENDED',
        },
      ],
    });
    expect(table.stdout).toMatch(
      new RegExp(`g\\s+${keyId(KEYS[1]!)}\\s+AIza…0002\\s+dead\\s+CONSUMER_SUSPENDED`),
    );
    expect(table.stderr).toContain('the results are shown, not stored');
  });

  it('with a table, stores what it found: the dead key reads invalid in keys list and status', async () => {
    // Prepare
    writeFileSync(
      join(dir, 'config.yaml'),
      config(`state:\n  store: dynamodb\n  endpoint: ${engine.endpoint}\n  table: ${engine.table}\n`),
    );

    // Act
    const checked = await gp('check', '--json');
    const keys = JSON.parse((await gp('keys', 'list', '--json')).stdout).keys;
    const status = JSON.parse((await gp('status', '--json')).stdout);

    // Assess
    expect(JSON.parse(checked.stdout).stored).toBe(true);
    expect(keys.map((k: { status: string; reason: string | null }) => [k.status, k.reason])).toEqual([
      ['active', null],
      ['invalid', 'CONSUMER_SUSPENDED'],
    ]);
    expect(keys[0].lastCheck).toEqual({ outcome: 'valid', at: expect.any(String) });
    expect(status.groups).toEqual([
      { group: 'g', keys: 2, active: 1, cooling: 0, invalid: 1, disabled: 0, unknown: 0 },
    ]);
  });
});

afterAll(() => {
  cli.expectNoLeaks([...KEYS, ...NEW_KEYS, PLAIN_TOKEN, ...cli.createdTokens()]);
});
