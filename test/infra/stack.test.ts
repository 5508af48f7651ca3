import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App, Duration, Validations } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { RetentionDays } from 'aws-cdk-lib/aws-logs';
import { AwsSolutionsChecks } from 'cdk-nag';
import { beforeAll, describe, expect, it } from 'vitest';
import { PROXY_FUNCTION_ENV } from '../../lambda/proxy/runtime.js';
import { GeminiProxyStack } from '../../lib/gemini-proxy-stack.js';

describe('Stack: GeminiProxyStack', () => {
  let template: Template;

  beforeAll(() => {
    const app = new App({ outdir: mkdtempSync(join(tmpdir(), 'gp-synth-')) });
    const stack = new GeminiProxyStack(app, 'Test', {
      memorySize: 768,
      timeout: Duration.minutes(12),
      reservedConcurrency: 20,
      logRetention: RetentionDays.TWO_WEEKS,
      secretCacheAge: Duration.seconds(30),
      settings: { policy: { max_attempts: 6 } },
    });
    template = Template.fromStack(stack);
  });

  it('serves through a streaming function URL with NONE auth and both invoke permissions', () => {
    template.hasResourceProperties('AWS::Lambda::Url', { AuthType: 'NONE', InvokeMode: 'RESPONSE_STREAM' });
    template.hasResourceProperties('AWS::Lambda::Permission', {
      Action: 'lambda:InvokeFunctionUrl',
      FunctionUrlAuthType: 'NONE',
      Principal: '*',
    });
    template.hasResourceProperties('AWS::Lambda::Permission', {
      Action: 'lambda:InvokeFunction',
      InvokedViaFunctionUrl: true,
      Principal: '*',
    });
  });

  it('runs Node.js 24 on arm64 with the configured memory, timeout and reserved concurrency', () => {
    template.hasResourceProperties('AWS::Lambda::Function', {
      Runtime: 'nodejs24.x',
      Architectures: ['arm64'],
      Handler: 'index.handler',
      MemorySize: 768,
      Timeout: 720,
      ReservedConcurrentExecutions: 20,
    });
  });

  it('sets exactly the environment the function reads (no drift)', () => {
    const fns = template.findResources('AWS::Lambda::Function');
    const env = Object.values(fns)[0]!.Properties.Environment.Variables as Record<string, unknown>;
    expect(Object.keys(env).sort()).toEqual([...PROXY_FUNCTION_ENV, 'NODE_OPTIONS'].sort());
    expect(env.SECRET_CACHE_MS).toBe('30000');
    expect(env.NODE_OPTIONS).toBe('--enable-source-maps');
    expect(JSON.parse(env.PROXY_SETTINGS as string)).toEqual({
      policy: { max_attempts: 6 },
      upstream: { request_timeout_ms: 720_000 },
    });
  });

  it('reads no environment variable in the function code that the stack does not set', () => {
    // The Lambda side: everything under lambda/ except the local entry and its file/env config loader.
    const root = join(__dirname, '..', '..', 'lambda');
    const files = ['core', 'adapters', 'proxy'].flatMap((dir) =>
      readdirSync(join(root, dir))
        .filter((f) => f.endsWith('.ts') && f !== 'config-loader.ts')
        .map((f) => join(root, dir, f)),
    );
    const read = new Set(
      files.flatMap((f) =>
        [
          ...readFileSync(f, 'utf8').matchAll(
            /\benv\??\.([A-Z][A-Z0-9_]+)|required\(env, '([A-Z][A-Z0-9_]+)'\)/g,
          ),
        ].map((m) => (m[1] ?? m[2])!),
      ),
    );
    // AWS_* are the Lambda runtime's own (region, the role's credentials), not the stack's to set.
    const ours = [...read].filter((name) => !name.startsWith('AWS_')).sort();
    expect(ours).toEqual([...PROXY_FUNCTION_ENV].sort());
  });

  it('grants exactly the DynamoDB and Secrets Manager actions the proxy uses, on its own resources', () => {
    const policies = template.findResources('AWS::IAM::Policy');
    const statements = Object.values(policies).flatMap(
      (p) => p.Properties.PolicyDocument.Statement as Array<{ Action: string | string[]; Resource: unknown }>,
    );
    const actions = statements.flatMap((s) => (Array.isArray(s.Action) ? s.Action : [s.Action]));
    expect(actions.filter((a) => a.startsWith('dynamodb:')).sort()).toEqual([
      'dynamodb:BatchGetItem',
      'dynamodb:GetItem',
      'dynamodb:Query',
      'dynamodb:UpdateItem',
    ]);
    expect(actions.filter((a) => a.startsWith('secretsmanager:'))).toEqual(['secretsmanager:GetSecretValue']);
    expect(JSON.stringify(statements)).not.toContain('"*"');
    template.hasResourceProperties('AWS::IAM::Policy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Resource: { 'Fn::GetAtt': [Match.stringLikeRegexp('KeyStateTable'), 'Arn'] } }),
          Match.objectLike({
            Action: 'secretsmanager:GetSecretValue',
            Resource: [
              { Ref: Match.stringLikeRegexp('SecretsGeminiKeys') },
              { Ref: Match.stringLikeRegexp('SecretsClientTokens') },
            ],
          }),
        ]),
      },
    });
    expect(
      template.findResources('AWS::IAM::Role', { Properties: { ManagedPolicyArns: Match.anyValue() } }),
    ).toEqual({});
  });

  it('keeps key state in an on-demand, encrypted, recoverable table with TTL, retained by default', () => {
    template.hasResource('AWS::DynamoDB::GlobalTable', {
      DeletionPolicy: 'Retain',
      Properties: Match.objectLike({
        BillingMode: 'PAY_PER_REQUEST',
        KeySchema: [
          { AttributeName: 'pk', KeyType: 'HASH' },
          { AttributeName: 'sk', KeyType: 'RANGE' },
        ],
        SSESpecification: { SSEEnabled: true },
        TimeToLiveSpecification: { AttributeName: 'ttl', Enabled: true },
        Replicas: [
          Match.objectLike({ PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true } }),
        ],
      }),
    });
  });

  it('creates both secrets with placeholders the proxy treats as "not configured yet"', () => {
    template.resourceCountIs('AWS::SecretsManager::Secret', 2);
    template.hasResource('AWS::SecretsManager::Secret', {
      DeletionPolicy: 'Retain',
      Properties: Match.objectLike({ SecretString: '{"groups":[]}' }),
    });
    template.hasResourceProperties('AWS::SecretsManager::Secret', { SecretString: '{"tokens":[]}' });
  });

  it('keeps logs for the configured retention', () => {
    template.hasResourceProperties('AWS::Logs::LogGroup', { RetentionInDays: 14 });
  });

  it('outputs the function URL, the OpenAI base URL, the table and the secret names', () => {
    for (const name of ['FunctionUrl', 'OpenAiBaseUrl', 'TableName', 'KeysSecretName', 'TokensSecretName']) {
      template.hasOutput(name, {});
    }
    template.hasOutput('OpenAiBaseUrl', {
      Value: { 'Fn::Join': ['', [{ 'Fn::GetAtt': [Match.anyValue(), 'FunctionUrl'] }, 'v1']] },
    });
  });
});

describe('Stack: props checked at synth', () => {
  const synth = (props: ConstructorParameters<typeof GeminiProxyStack>[2]) =>
    Template.fromStack(
      new GeminiProxyStack(new App({ outdir: mkdtempSync(join(tmpdir(), 'gp-p-')) }), 'P', props),
    );

  it('reserves no concurrency when asked for 0', () => {
    const fn = Object.values(synth({ reservedConcurrency: 0 }).findResources('AWS::Lambda::Function'))[0]!;
    expect(fn.Properties.ReservedConcurrentExecutions).toBeUndefined();
  });

  it('rejects settings the function would reject, naming the field', () => {
    expect(() => synth({ settings: { state: { timeout_ms: 0 } } })).toThrow(
      /state\.timeout_ms: expected a positive number/,
    );
    expect(() => synth({ settings: { polcy: {} } })).toThrow(/unknown field polcy|Unrecognized key/);
    expect(() => synth({ memorySize: 100.5 })).toThrow(/memorySize/);
  });
});

describe('Stack: cdk-nag AwsSolutions', () => {
  it('synthesizes with no unacknowledged finding, and every acknowledgement gives its reason', () => {
    // Prepare
    const outdir = mkdtempSync(join(tmpdir(), 'gp-nag-'));
    const app = new App({ outdir });
    const stack = new GeminiProxyStack(app, 'Nag');
    Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { writeSuppressionsToCloudFormation: true }));

    // Act: a finding without acknowledgement fails synthesis
    expect(() => app.synth()).not.toThrow();

    // Assess: the acknowledgements are the expected ones, each with a specific reason
    const template = Template.fromStack(stack).toJSON() as {
      Resources: Record<
        string,
        { Metadata?: { cdk_nag?: { rules_to_suppress: Array<{ id: string; reason: string }> } } }
      >;
    };
    const acknowledged = Object.values(template.Resources).flatMap(
      (r) => r.Metadata?.cdk_nag?.rules_to_suppress ?? [],
    );
    expect(acknowledged.map((a) => a.id)).toEqual(['AwsSolutions-SMG4', 'AwsSolutions-SMG4']);
    for (const a of acknowledged) expect(a.reason).toContain('no rotation function can mint new ones');
    expect(readdirSync(outdir)).toContain('validation-report.json');
  });
});
