import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { App, Duration, Validations } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { RetentionDays } from 'aws-cdk-lib/aws-logs';
import { AwsSolutionsChecks } from 'cdk-nag';
import { beforeAll, describe, expect, it } from 'vitest';
import { JsonLogger } from '../../lambda/adapters/logger.js';
import { RequestLog } from '../../lambda/core/forwarding/request-log.js';
import { noMetrics } from '../../lambda/core/metrics.js';
import { HEALTH_CHECK_ENV } from '../../lambda/health-check/runtime.js';
import { PROXY_FUNCTION_ENV } from '../../lambda/proxy/runtime.js';
import { USAGE_QUERIES } from '../../lib/constructs/monitoring.js';
import { GeminiProxyStack } from '../../lib/gemini-proxy-stack.js';
import { tempDirs } from '../support/temp-dir.js';

const tempDir = tempDirs();

describe('Stack: GeminiProxyStack', () => {
  let template: Template;

  beforeAll(() => {
    const app = new App({ outdir: tempDir('gp-synth-') });
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
      readdirSync(join(root, dir), { recursive: true, encoding: 'utf8' })
        .filter((f) => f.endsWith('.ts') && !f.endsWith('config-loader.ts'))
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
    const policies = Object.fromEntries(
      Object.entries(template.findResources('AWS::IAM::Policy')).filter(([id]) => id.startsWith('ProxyRole')),
    );
    expect(Object.keys(policies)).toHaveLength(1);
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
      Roles: [{ Ref: Match.stringLikeRegexp('^ProxyRole') }],
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

  it('outputs the function URL, the OpenAI base URL, the table, the secret names and the health check (what the CLI reads)', () => {
    for (const name of ['FunctionUrl', 'OpenAiBaseUrl', 'TableName', 'KeysSecretName', 'TokensSecretName']) {
      template.hasOutput(name, {});
    }
    // `gemini-proxy status` finds the alarms by the names CloudFormation gives them: <stack>-<logical id>-…
    const alarms = Object.keys(template.findResources('AWS::CloudWatch::Alarm'));
    expect(alarms.length).toBeGreaterThan(5);
    for (const id of alarms) expect(id).toMatch(/^Monitoring/);
    expect(
      template.findResources('AWS::CloudWatch::Alarm', { Properties: { AlarmName: Match.anyValue() } }),
    ).toEqual({});
    template.hasOutput('HealthCheckFunctionName', {
      Value: { Ref: Match.stringLikeRegexp('^HealthCheck') },
    });
    template.hasOutput('OpenAiBaseUrl', {
      Value: { 'Fn::Join': ['', [{ 'Fn::GetAtt': [Match.anyValue(), 'FunctionUrl'] }, 'v1']] },
    });
  });
});

describe('Stack: cdk-nag AwsSolutions', () => {
  it('synthesizes with no unacknowledged finding, and every acknowledgement gives its reason', () => {
    // Prepare
    const outdir = tempDir('gp-nag-');
    const app = new App({ outdir });
    const stack = new GeminiProxyStack(app, 'Nag', { alertEmail: 'ops@example.com' });
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
    expect(new Set(acknowledged.map((a) => a.id))).toEqual(
      new Set(['AwsSolutions-SMG4', 'AwsSolutions-SNS2']),
    );
    for (const a of acknowledged) {
      expect(a.reason).toMatch(
        a.id === 'AwsSolutions-SMG4'
          ? /no rotation function can mint new ones/
          : /carry alarm names and numbers only/,
      );
    }
    expect(readdirSync(outdir)).toContain('validation-report.json');
  });
});

describe('Stack: health check, alarms and dashboard', () => {
  let template: Template;

  beforeAll(() => {
    const app = new App({ outdir: tempDir('gp-mon-') });
    const stack = new GeminiProxyStack(app, 'Mon', {
      alertEmail: 'ops@example.com',
      healthCheckInterval: Duration.minutes(10),
      alarmThresholds: { unhealthyKeys: 5, errorRatePercent: 20 },
      metricsNamespace: 'MyProxy',
    });
    template = Template.fromStack(stack);
  });

  const functionId = (prefix: string) =>
    Object.keys(template.findResources('AWS::Lambda::Function')).find((id) => id.startsWith(prefix))!;

  it('runs the health check on an EventBridge schedule', () => {
    template.hasResourceProperties('AWS::Events::Rule', {
      ScheduleExpression: 'rate(10 minutes)',
      State: 'ENABLED',
      Targets: [Match.objectLike({ Arn: { 'Fn::GetAtt': [functionId('HealthCheckFunction'), 'Arn'] } })],
    });
    template.hasResourceProperties('AWS::Lambda::Permission', {
      Action: 'lambda:InvokeFunction',
      Principal: 'events.amazonaws.com',
      FunctionName: { 'Fn::GetAtt': [functionId('HealthCheckFunction'), 'Arn'] },
    });
  });

  it('gives the health check exactly the environment it reads and least privilege', () => {
    const fn = template.findResources('AWS::Lambda::Function')[functionId('HealthCheckFunction')]!;
    expect(Object.keys(fn.Properties.Environment.Variables).sort()).toEqual(
      [...HEALTH_CHECK_ENV, 'NODE_OPTIONS'].sort(),
    );
    expect(fn.Properties.Environment.Variables.METRICS_NAMESPACE).toBe('MyProxy');
    // Its entry, and the shared environment both functions read the same way.
    const source = [
      ['health-check', 'runtime.ts'],
      ['adapters', 'lambda-env.ts'],
    ]
      .map((path) => readFileSync(join(__dirname, '..', '..', 'lambda', ...path), 'utf8'))
      .join('\n');
    const read = new Set(
      [...source.matchAll(/\benv\??\.([A-Z][A-Z0-9_]+)|required\(env, '([A-Z][A-Z0-9_]+)'\)/g)].map(
        (m) => (m[1] ?? m[2])!,
      ),
    );
    expect([...read].sort()).toEqual([...HEALTH_CHECK_ENV].sort());
    const [policy] = Object.entries(template.findResources('AWS::IAM::Policy')).filter(([id]) =>
      id.startsWith('HealthCheckRole'),
    );
    const statements = policy![1].Properties.PolicyDocument.Statement as Array<{ Action: string | string[] }>;
    expect(statements.flatMap((st) => (Array.isArray(st.Action) ? st.Action : [st.Action])).sort()).toEqual([
      'dynamodb:DeleteItem',
      'dynamodb:GetItem',
      'dynamodb:Query',
      'dynamodb:UpdateItem',
      'logs:CreateLogStream',
      'logs:PutLogEvents',
      'secretsmanager:GetSecretValue',
    ]);
  });

  it('builds the health check like the proxy: Node.js 24 on arm64, its own log group, no Lambda retries', () => {
    template.hasResourceProperties('AWS::Lambda::Function', {
      Runtime: 'nodejs24.x',
      Architectures: ['arm64'],
      Handler: 'index.handler',
      MemorySize: 256,
      Timeout: 120,
      LoggingConfig: Match.objectLike({ LogGroup: { Ref: Match.stringLikeRegexp('^HealthCheckLogs') } }),
      Environment: {
        Variables: Match.objectLike({ CHECK_CONCURRENCY: '4', NODE_OPTIONS: '--enable-source-maps' }),
      },
    });
    template.hasResourceProperties('AWS::Lambda::EventInvokeConfig', {
      FunctionName: { Ref: functionId('HealthCheckFunction') },
      MaximumRetryAttempts: 0,
    });
    template.resourcePropertiesCountIs('AWS::Logs::LogGroup', { RetentionInDays: 30 }, 2);
  });

  it('emails the operator through an SNS topic', () => {
    template.hasResourceProperties('AWS::SNS::Subscription', {
      Protocol: 'email',
      Endpoint: 'ops@example.com',
    });
  });

  it.each([
    ['UnhealthyKeys', 'UnhealthyKeys', 6, 'GreaterThanOrEqualToThreshold', 'notBreaching'],
    ['UnhealthyKeyShare', 'UnhealthyKeyPercent', 50, 'GreaterThanThreshold', 'notBreaching'],
    ['SlowFirstByte', 'TimeToFirstByte', 5000, 'GreaterThanOrEqualToThreshold', 'notBreaching'],
    ['CircuitOpen', 'CircuitOpenRefusals', 1, 'GreaterThanOrEqualToThreshold', 'notBreaching'],
    ['KeysExhausted', 'KeysExhaustedRefusals', 10, 'GreaterThanOrEqualToThreshold', 'notBreaching'],
    ['StateUnavailable', 'StateUnavailableRefusals', 1, 'GreaterThanOrEqualToThreshold', 'notBreaching'],
    ['HealthCheckNotReporting', 'HealthCheckRuns', 1, 'LessThanThreshold', 'breaching'],
  ])(
    'alarm %s watches %s at %d, and notifies on alarm and recovery',
    (id, metricName, threshold, op, missing) => {
      const alarms = template.findResources('AWS::CloudWatch::Alarm');
      const [, alarm] = Object.entries(alarms).find(([key]) => key.startsWith(`Monitoring${id}`))!;
      expect(alarm.Properties).toMatchObject({
        MetricName: metricName,
        Namespace: 'MyProxy',
        Threshold: threshold,
        ComparisonOperator: op,
        TreatMissingData: missing,
      });
      // The series must be the one the functions emit: dimension `service` only (see emf-metrics.ts).
      const service = ['UnhealthyKeys', 'UnhealthyKeyPercent', 'HealthCheckRuns'].includes(metricName)
        ? 'health-check'
        : 'proxy';
      expect(alarm.Properties.Dimensions).toEqual([{ Name: 'service', Value: service }]);
      if (metricName === 'TimeToFirstByte') expect(alarm.Properties.ExtendedStatistic).toBe('p90');
      expect(alarm.Properties.AlarmActions).toEqual([{ Ref: expect.stringMatching(/^MonitoringAlerts/) }]);
      expect(alarm.Properties.OKActions).toEqual(alarm.Properties.AlarmActions);
    },
  );

  it('alarms on the error rate with metric math, and on Lambda errors and throttles', () => {
    const alarms = template.findResources('AWS::CloudWatch::Alarm');
    const [, rate] = Object.entries(alarms).find(([key]) => key.startsWith('MonitoringErrorRate'))!;
    expect(rate.Properties.Threshold).toBe(20);
    expect(JSON.stringify(rate.Properties.Metrics)).toContain(
      'IF(requests >= 20, 100 * errors / requests, 0)',
    );
    for (const [id, name] of [
      ['MonitoringProxyErrors', 'Errors'],
      ['MonitoringProxyThrottles', 'Throttles'],
      ['MonitoringHealthCheckErrors', 'Errors'],
    ]) {
      const [, a] = Object.entries(alarms).find(([key]) => key.startsWith(id!))!;
      expect(a.Properties).toMatchObject({ MetricName: name, Namespace: 'AWS/Lambda', Threshold: 1 });
    }
  });

  it('has a dashboard with the proxy, key and Lambda widgets', () => {
    const [dash] = Object.values(template.findResources('AWS::CloudWatch::Dashboard'));
    const body = JSON.stringify(dash!.Properties.DashboardBody);
    for (const name of [
      'Requests',
      'TimeToFirstByte',
      'KeysExhaustedRefusals',
      'HealthyKeys',
      'ConcurrentExecutions',
      'Throttles',
    ]) {
      expect(body).toContain(name);
    }
  });

  it('has Logs Insights widgets over the proxy log group whose fields the request line carries', () => {
    // Prepare: the dashboard's log widgets, and a request line as the proxy writes it
    const [dash] = Object.values(template.findResources('AWS::CloudWatch::Dashboard'));
    const body = JSON.stringify(dash!.Properties.DashboardBody);
    const logGroups = Object.keys(template.findResources('AWS::Logs::LogGroup'));
    const proxyLogs = logGroups.find((id) => id.startsWith('ProxyLogs'))!;
    const lines: string[] = [];
    new RequestLog({
      logger: new JsonLogger('info', (l) => lines.push(l)),
      metrics: noMetrics,
      now: () => 0,
      openCircuits: () => 0,
    }).forwarded(
      {
        request: {
          method: 'POST',
          path: '/v1/chat/completions',
          query: '',
          headers: {},
          requestId: 'r',
        } as never,
        started: 0,
        model: 'gemini-2.5-flash',
        caller: { clientId: 'c0ffee0000000000', name: 'ci' },
      },
      200,
      {
        count: 1,
        retries: 0,
        upstreamErrors: { transient: 0, quota: 0, deadKey: 0 },
        keyCooldowns: 0,
        tokens: { input: 3, output: 4 },
        keyId: 'abcdef0123456789',
      },
    );
    const line = JSON.parse(lines[0]!) as Record<string, unknown>;

    // Assess: one widget per query, each reading the proxy's log group (and only it)
    for (const [title, query] of Object.entries(USAGE_QUERIES)) {
      expect(body).toContain(title);
      // Each line as it sits in the body: a JSON string inside the dashboard's JSON, stringified again here.
      for (const l of query) expect(body).toContain(JSON.stringify(JSON.stringify(l)).slice(3, -3));
    }
    expect(body.match(/\\"type\\":\\"log\\"/g)).toHaveLength(3);
    expect(body.split(`{"Ref":"${proxyLogs}"}`)).toHaveLength(4);
    for (const other of logGroups.filter((id) => id !== proxyLogs)) expect(body).not.toContain(other);
    // Every field a query reads (not its own aliases, not the query language's words) is in the line
    const words = new Set([
      'filter',
      'and',
      'ispresent',
      'stats',
      'count',
      'sum',
      'as',
      'by',
      'sort',
      'desc',
    ]);
    for (const query of Object.values(USAGE_QUERIES)) {
      const text = query.join(' | ').replace(/"[^"]*"/g, '');
      const aliases = new Set([...text.matchAll(/\bas (\w+)/g)].map((m) => m[1]));
      const fields = [...text.matchAll(/\b[a-zA-Z]\w*\b/g)]
        .map((m) => m[0])
        .filter((w) => !words.has(w) && !aliases.has(w) && w !== 'limit' && w !== 'fields');
      expect(fields.length).toBeGreaterThan(0);
      for (const field of fields) expect(Object.keys(line)).toContain(field);
    }
    expect(line).toMatchObject({ message: 'request', client: 'ci', keyId: 'abcdef0123456789', status: 200 });
  });
});
