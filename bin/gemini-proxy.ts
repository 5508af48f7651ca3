#!/usr/bin/env node
import { App, Duration, RemovalPolicy } from 'aws-cdk-lib';
import { RetentionDays } from 'aws-cdk-lib/aws-logs';
import { GeminiProxyStack } from '../lib/gemini-proxy-stack.js';

const app = new App();
const context = (name: string): string | undefined => {
  const v = app.node.tryGetContext(name);
  return v === undefined || v === null || v === '' ? undefined : String(v);
};
const number = (name: string): number | undefined => {
  const v = context(name);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`context ${name}: expected a number`);
  return n;
};

const retention = number('logRetentionDays');
if (retention !== undefined && !(Object.values(RetentionDays) as unknown[]).includes(retention)) {
  throw new Error(
    'context logRetentionDays: expected a retention CloudWatch accepts (1, 3, 5, 7, 14, 30, 60, 90, …)',
  );
}
const settings = context('settings');
new GeminiProxyStack(app, context('stackName') ?? 'GeminiProxy', {
  memorySize: number('memorySize'),
  timeout: number('timeoutSeconds') === undefined ? undefined : Duration.seconds(number('timeoutSeconds')!),
  reservedConcurrency: number('reservedConcurrency'),
  logRetention: retention === undefined ? undefined : (retention as RetentionDays),
  secretCacheAge:
    number('secretCacheSeconds') === undefined ? undefined : Duration.seconds(number('secretCacheSeconds')!),
  logLevel: context('logLevel'),
  metricsNamespace: context('metricsNamespace'),
  alertEmail: context('alertEmail'),
  healthCheckInterval:
    number('healthCheckMinutes') === undefined ? undefined : Duration.minutes(number('healthCheckMinutes')!),
  alarmThresholds:
    context('alarmThresholds') === undefined ? undefined : JSON.parse(context('alarmThresholds')!),
  settings: settings === undefined ? undefined : (JSON.parse(settings) as Record<string, unknown>),
  dataRemovalPolicy: context('destroyData') === 'true' ? RemovalPolicy.DESTROY : undefined,
  env: { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION },
});
