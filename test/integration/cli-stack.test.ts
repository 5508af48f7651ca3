import { createHash } from 'node:crypto';
import { CloudFormationClient, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import { CloudWatchClient, DescribeAlarmsCommand } from '@aws-sdk/client-cloudwatch';
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { DynamoDbKeyStateStore } from '../../lambda/adapters/state/dynamodb/store.js';
import { configuredTokens } from '../../lambda/core/config/derived.js';
import { parseConfig } from '../../lambda/core/config/parse.js';
import { tokensSecretSchema } from '../../lambda/core/config/secrets.js';
import { keyId, TokenVerifier } from '../../lambda/core/credentials.js';
import { CliOutputs } from '../support/cli-runner.js';
import { type DynamoEngine, startDynamoEngine, testClient } from '../support/dynamo-engine.js';
import { type SecretsDouble, startSecretsDouble } from '../support/secrets-double.js';
import { tempDirs } from '../support/temp-dir.js';

const KEYS = ['AIzaSyStackKey-00000000000000000000001', 'AIzaSyStackKey-00000000000000000000002'];
const NEW_KEY = 'AIzaSyStackKey-00000000000000000000003';
const OLD_TOKEN = 'old-client-token-from-before-the-cli';
const sha = (t: string) => createHash('sha256').update(t).digest('hex');
const KEYS_SECRET = 'proxy-keys';
const TOKENS_SECRET = 'proxy-tokens';
const keysText = JSON.stringify({ groups: [{ name: 'primary', api_keys: KEYS, limits: { rpm: 10 } }] });
const tokensText = JSON.stringify({ tokens: [{ sha256: sha(OLD_TOKEN), name: 'old', rpm: 60 }] });

const cfn = mockClient(CloudFormationClient);
const lambda = mockClient(LambdaClient);
const cloudwatch = mockClient(CloudWatchClient);
const tempDir = tempDirs();
const cli = new CliOutputs();

describe('CLI on a deployed stack', () => {
  let secrets: SecretsDouble;
  let engine: DynamoEngine;
  let dir: string;
  let store: DynamoDbKeyStateStore;
  const gp = (...argv: string[]) => cli.run(argv, { cwd: dir, env: {} });
  const gpIn = (stdin: string, ...argv: string[]) => cli.run(argv, { cwd: dir, env: {}, stdin });
  const secret = (id: string) => JSON.parse(secrets.values.get(id)!);
  const puts = () => secrets.calls.filter((c) => c.startsWith('secretsmanager.PutSecretValue')).length;

  beforeAll(async () => {
    secrets = await startSecretsDouble({});
    engine = await startDynamoEngine();
    dir = tempDir('gp-cli-stack-');
    vi.stubEnv('AWS_ENDPOINT_URL_SECRETS_MANAGER', secrets.endpoint);
    vi.stubEnv('AWS_ENDPOINT_URL_DYNAMODB', engine.endpoint);
    vi.stubEnv('AWS_ACCESS_KEY_ID', 'local');
    vi.stubEnv('AWS_SECRET_ACCESS_KEY', 'local');
    vi.stubEnv('AWS_REGION', 'us-east-1');
    store = new DynamoDbKeyStateStore({
      client: testClient(engine.endpoint),
      table: engine.table,
      cacheMs: 0,
      rotationShards: 1,
    });
  });
  afterAll(async () => {
    vi.unstubAllEnvs();
    await secrets.close();
    await engine.close();
  });
  beforeEach(() => {
    secrets.values.set(KEYS_SECRET, keysText);
    secrets.values.set(TOKENS_SECRET, tokensText);
    secrets.beforeCall = undefined;
    secrets.failing = false;
    secrets.calls.length = 0;
    cfn.reset();
    lambda.reset();
    cloudwatch.reset();
    cfn.on(DescribeStacksCommand, { StackName: 'GeminiProxy' }).resolves({
      Stacks: [
        {
          StackName: 'GeminiProxy',
          CreationTime: new Date(),
          StackStatus: 'UPDATE_COMPLETE',
          Outputs: [
            { OutputKey: 'TableName', OutputValue: engine.table },
            { OutputKey: 'KeysSecretName', OutputValue: KEYS_SECRET },
            { OutputKey: 'TokensSecretName', OutputValue: TOKENS_SECRET },
            { OutputKey: 'HealthCheckFunctionName', OutputValue: 'GeminiProxy-HealthCheck-fn' },
          ],
        },
      ],
    });
  });

  it('tokens create stores only { name, sha256, rpm, created } in the tokens secret, as a new current version', async () => {
    // Act
    const created = await gp('tokens', 'create', '--name', 'ci', '--rpm', '20');

    // Assess: the token alone on stdout; the proxy's schema and verifier take the secret as written
    expect(created.code).toBe(0);
    const token = created.stdout.trim();
    expect(created.stdout).toBe(`${token}\n`);
    const stored = secret(TOKENS_SECRET);
    expect(stored.tokens[1]).toEqual({
      name: 'ci',
      sha256: sha(token),
      rpm: 20,
      created: expect.any(String),
    });
    expect(tokensSecretSchema.safeParse(stored).success).toBe(true);
    const config = parseConfig({ client_tokens: stored.tokens, groups: [{ name: 'g', api_keys: ['k'] }] });
    expect(new TokenVerifier(configuredTokens(config)).verify(token)?.name).toBe('ci');
    const labels = [...secrets.versions.get(TOKENS_SECRET)!.values()].flatMap((v) => [...v.stages]);
    expect(labels.sort()).toEqual(['AWSCURRENT', 'AWSPREVIOUS']);
  });

  it("tokens list shows the secret's tokens; revoke removes one by name and one by id", async () => {
    // Prepare
    const token = (await gp('tokens', 'create', '--name', 'temp')).stdout.trim();

    // Act
    const listed = JSON.parse((await gp('tokens', 'list', '--json')).stdout).tokens;
    const byName = await gp('tokens', 'revoke', 'old');
    const byId = await gp('tokens', 'revoke', keyId(token));

    // Assess
    expect(listed.map((t: { name: string; id: string }) => [t.name, t.id])).toEqual([
      ['old', keyId(OLD_TOKEN)],
      ['temp', keyId(token)],
    ]);
    expect([byName.code, byId.code]).toEqual([0, 0]);
    // Every token revoked: the proxy then refuses every request (README), which the secret allows.
    expect(secret(TOKENS_SECRET)).toEqual({ tokens: [] });
  });

  it('keys add writes the keys secret; duplicates and an invalid result are refused with nothing written', async () => {
    // Act
    const dupe = await gpIn(`${NEW_KEY}\n${KEYS[0]}\n`, 'keys', 'add', '--group', 'primary');
    const invalid = await gpIn(`${NEW_KEY}\n`, 'keys', 'add', '--group', 'primary', '--project', '');
    const putsBefore = puts();
    const added = await gpIn(`${NEW_KEY}\n`, 'keys', 'add', '--group', 'primary', '--project', 'p9');

    // Assess
    expect(dupe.code).toBe(1);
    expect(invalid.code).toBe(1);
    expect(invalid.stderr).toContain('groups[0].api_keys[2]');
    expect(putsBefore).toBe(0);
    expect(added.code).toBe(0);
    expect(secret(KEYS_SECRET).groups[0]).toEqual({
      name: 'primary',
      api_keys: [...KEYS, { key: NEW_KEY, project: 'p9' }],
      limits: { rpm: 10 },
    });
  });

  it('detects a concurrent edit of a secret (compare-and-swap on AWSCURRENT) and makes its edit again on top', async () => {
    // Prepare: another operator writes the secret between this CLI's read and its swap
    let raced = false;
    secrets.beforeCall = (operation) => {
      if (operation !== 'PutSecretValue' || raced) return;
      raced = true;
      const theirs = secret(TOKENS_SECRET);
      theirs.tokens.push({ sha256: sha('their-token'), name: 'theirs' });
      secrets.values.set(TOKENS_SECRET, JSON.stringify(theirs));
    };

    // Act
    const created = await gp('tokens', 'create', '--name', 'mine');

    // Assess: both edits are in the current version; two writes were made, the first never became current
    expect(created.code).toBe(0);
    expect(secret(TOKENS_SECRET).tokens.map((t: { name: string }) => t.name)).toEqual([
      'old',
      'theirs',
      'mine',
    ]);
    expect(puts()).toBe(2);
    const labelled = [...secrets.versions.get(TOKENS_SECRET)!.values()].filter((v) => v.stages.size > 0);
    expect(labelled.flatMap((v) => [...v.stages]).sort()).toEqual(['AWSCURRENT', 'AWSPREVIOUS']);
  });

  it('gives up, writing nothing current, when the secret keeps changing under it', async () => {
    // Prepare
    let n = 0;
    secrets.beforeCall = (operation) => {
      if (operation === 'PutSecretValue')
        secrets.values.set(TOKENS_SECRET, tokensText.replace('"old"', `"old${++n}"`));
    };

    // Act
    const created = await gp('tokens', 'create', '--name', 'never');

    // Assess
    expect(created.code).toBe(1);
    expect(created.stdout).toBe('');
    expect(created.stderr).toContain('kept changing');
    expect(secrets.values.get(TOKENS_SECRET)).not.toContain('never');
  });

  it("disable, enable and reset act on the stack's table; keys list shows them", async () => {
    // Prepare
    const id = keyId(KEYS[1]!);
    const until = Date.now() + 600_000;
    await store.record({
      kind: 'cooldown',
      group: 'primary',
      keyId: id,
      model: 'gemini-2.5-flash',
      cooldown: { until, cause: 'rpm' },
    });

    // Act
    const disabled = await gp('keys', 'disable', id, '--reason', 'leaked in a gist');
    const listed = JSON.parse((await gp('keys', 'list', '--json')).stdout);
    const reset = await gp('keys', 'reset', id);
    const enabled = await gp('keys', 'enable', id);
    const view = (await store.describe('primary', [id]))[0]!;

    // Assess
    expect([disabled.code, reset.code, enabled.code]).toEqual([0, 0, 0]);
    expect(listed.state).toBe(engine.table);
    expect(listed.keys[1]).toMatchObject({
      key: 'AIza…0002',
      status: 'disabled',
      reason: 'leaked in a gist',
      disabledIn: 'table',
      cooling: [{ model: 'gemini-2.5-flash', cause: 'rpm', until: expect.any(String) }],
    });
    expect(view.status).toBe('active');
    expect(view.cooldowns.size).toBe(0);
    expect(puts()).toBe(0);
  });

  it('status reports the secrets, the table, the pool per group and the alarm states; a part that fails makes it exit 1', async () => {
    // Prepare
    cloudwatch.on(DescribeAlarmsCommand, { AlarmNamePrefix: 'GeminiProxy-Monitoring' }).resolves({
      MetricAlarms: [
        { AlarmName: 'GeminiProxy-MonitoringUnhealthyKeysA1-X', StateValue: 'OK' },
        {
          AlarmName: 'GeminiProxy-MonitoringErrorRateB2-Y',
          StateValue: 'ALARM',
          StateReason: 'threshold crossed',
        },
      ],
    });

    // Act
    const ok = await gp('status', '--json');
    secrets.failing = true;
    const broken = await gp('status');

    // Assess
    expect(ok.code).toBe(0);
    const out = JSON.parse(ok.stdout);
    expect(out.components.map((c: { name: string; ok: boolean }) => [c.name, c.ok])).toEqual([
      ['keys secret', true],
      ['tokens secret', true],
      ['state table', true],
      ['alarms', true],
    ]);
    expect(out.groups).toEqual([
      { group: 'primary', keys: 2, active: 2, cooling: 0, invalid: 0, disabled: 0, unknown: 0 },
    ]);
    expect(out.alarms.map((a: { state: string }) => a.state)).toEqual(['OK', 'ALARM']);
    expect(broken.code).toBe(1);
    expect(broken.stdout).toMatch(/keys secret\s+NO/);
  });

  it('check invokes the health-check function and lists the keys it found invalid; a failed run exits 1', async () => {
    // Prepare
    await store.record({
      kind: 'invalid',
      group: 'primary',
      keyId: keyId(KEYS[0]!),
      reason: 'API_KEY_INVALID',
    });
    lambda
      .on(InvokeCommand, { FunctionName: 'GeminiProxy-HealthCheck-fn', InvocationType: 'RequestResponse' })
      .resolvesOnce({
        StatusCode: 200,
        Payload: new TextEncoder().encode('{"checked":2,"skipped":0,"dead":1}') as never,
      })
      .resolvesOnce({
        StatusCode: 200,
        FunctionError: 'Unhandled',
        Payload: new TextEncoder().encode('{"errorMessage":"keys secret unavailable"}') as never,
      });

    // Act
    const ok = await gp('check');
    const failed = await gp('check');

    // Assess
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain('checked 2 key(s), 1 dead, 0 not reached in time');
    expect(ok.stdout).toMatch(new RegExp(`primary\\s+${keyId(KEYS[0]!)}\\s+AIza…0001\\s+API_KEY_INVALID`));
    expect(failed.code).toBe(1);
    expect(failed.stderr).toContain('the health check failed: keys secret unavailable');
  });

  it('names the outputs a stack lacks (an older deployment)', async () => {
    // Prepare
    cfn.on(DescribeStacksCommand).resolves({
      Stacks: [
        {
          StackName: 'Old',
          CreationTime: new Date(),
          StackStatus: 'CREATE_COMPLETE',
          Outputs: [{ OutputKey: 'TableName', OutputValue: 't' }],
        },
      ],
    });

    // Act
    const listed = await gp('--stack', 'Old', 'keys', 'list');

    // Assess
    expect(listed.code).toBe(1);
    expect(listed.stderr).toContain(
      'stack Old has no output KeysSecretName, TokensSecretName, HealthCheckFunctionName',
    );
  });
});

afterAll(() => {
  cli.expectNoLeaks([...KEYS, NEW_KEY, OLD_TOKEN, 'their-token', ...cli.createdTokens()]);
});
