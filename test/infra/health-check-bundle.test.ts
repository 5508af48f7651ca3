import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { DynamoDbKeyStateStore } from '../../lambda/adapters/state/dynamodb/store.js';
import { keyId } from '../../lambda/core/credentials.js';
import { GeminiProxyStack } from '../../lib/gemini-proxy-stack.js';
import { type DynamoEngine, startDynamoEngine, testClient } from '../support/dynamo-engine.js';
import { type FakeGemini, startFakeGemini } from '../support/fake-gemini.js';
import { type SecretsDouble, startSecretsDouble } from '../support/secrets-double.js';
import { tempDirs } from '../support/temp-dir.js';

const tempDir = tempDirs();
const GOOD = 'fake-key-hcb-good-001';
const DEAD = 'fake-key-hcb-dead-002';
const KEYS_SECRET = 'arn:aws:secretsmanager:us-east-1:000000000000:secret:hc-keys';

/** The health-check asset from cdk.out, invoked as the schedule would, against real engines and doubles. */
describe('Bundle: the health-check function asset from cdk.out', () => {
  let engine: DynamoEngine;
  let fake: FakeGemini;
  let secrets: SecretsDouble;
  let bundlePath: string;
  const saved = { ...process.env };

  beforeAll(async () => {
    const outdir = tempDir('gp-hc-bundle-');
    const app = new App({ outdir });
    const stack = new GeminiProxyStack(app, 'HcBundle');
    app.synth();
    const [fn] = Object.entries(Template.fromStack(stack).findResources('AWS::Lambda::Function')).filter(
      ([id]) => id.startsWith('HealthCheckFunction'),
    );
    bundlePath = join(
      outdir,
      `asset.${String(fn![1].Properties.Code.S3Key).replace(/\.zip$/, '')}`,
      'index.mjs',
    );
    engine = await startDynamoEngine();
    fake = await startFakeGemini({ keys: [GOOD, DEAD] });
    fake.killKey(DEAD, 'API_KEY_SERVICE_BLOCKED');
    secrets = await startSecretsDouble({
      [KEYS_SECRET]: JSON.stringify({ groups: [{ name: 'primary', api_keys: [GOOD, DEAD] }] }),
    });
    Object.assign(process.env, {
      TABLE_NAME: engine.table,
      KEYS_SECRET_ID: KEYS_SECRET,
      METRICS_NAMESPACE: 'HcBundleTest',
      LOG_LEVEL: 'warn',
      CHECK_CONCURRENCY: '2',
      PROXY_SETTINGS: JSON.stringify({
        upstream: { native_base_url: fake.url },
        state: { endpoint: engine.endpoint },
      }),
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: 'local',
      AWS_SECRET_ACCESS_KEY: 'local',
      AWS_ENDPOINT_URL_SECRETS_MANAGER: secrets.endpoint,
    });
  });

  afterAll(async () => {
    for (const name of Object.keys(process.env)) if (!(name in saved)) delete process.env[name];
    vi.restoreAllMocks();
    await secrets.close();
    await fake.close();
    await engine.close();
  });

  it('checks every key, marks the dead one invalid, and reports counts as EMF', async () => {
    // Prepare
    expect(existsSync(bundlePath)).toBe(true);
    expect(statSync(bundlePath).size).toBeLessThanOrEqual(350 * 1024);
    const lines: string[] = [];
    const write = process.stdout.write.bind(process.stdout);
    vi.spyOn(process.stdout, 'write').mockImplementation((chunk, ...rest) => {
      lines.push(String(chunk));
      return (write as (...a: unknown[]) => boolean)(chunk, ...rest);
    });
    const { handler } = (await import(pathToFileURL(bundlePath).href)) as {
      handler: (
        event: unknown,
        context: unknown,
      ) => Promise<{ checked: number; dead: number; skipped: number }>;
    };

    // Act
    const result = await handler({ source: 'aws.events' }, { getRemainingTimeInMillis: () => 60_000 });

    // Assess
    expect(result).toEqual({ checked: 2, dead: 1, skipped: 0 });
    const reader = new DynamoDbKeyStateStore({
      client: testClient(engine.endpoint),
      table: engine.table,
      cacheMs: 0,
      rotationShards: 1,
    });
    const views = await reader.describe('primary', [keyId(GOOD), keyId(DEAD)]);
    expect(views.map((v) => v.status)).toEqual(['active', 'invalid']);
    expect(views[1]?.reason).toBe('API_KEY_SERVICE_BLOCKED');
    const emf = lines
      .filter((l) => l.startsWith('{"_aws"'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const totals = emf.find((e) => e.service === 'health-check' && e.group === undefined);
    expect(totals).toMatchObject({
      TotalKeys: 2,
      HealthyKeys: 1,
      InvalidKeys: 1,
      UnhealthyKeys: 1,
      UnhealthyKeyPercent: 50,
      HealthCheckRuns: 1,
    });
    expect(emf.find((e) => e.group === 'primary')).toMatchObject({ TotalKeys: 2, InvalidKeys: 1 });
    expect(lines.join('')).not.toContain(GOOD);
    expect(lines.join('')).not.toContain(DEAD);
  });
});
