#!/usr/bin/env node
import { App, Duration, RemovalPolicy } from 'aws-cdk-lib';
import { RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { ProxySettings } from '../lambda/core/config/settings.js';
import type { AlarmThresholds } from '../lib/constructs/alarm-thresholds.js';
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

/** A JSON option: a string on the command line (`-c name='{…}'`), or an object in cdk.json's `context`. */
const json = (name: string): unknown => {
  const v = app.node.tryGetContext(name);
  if (typeof v === 'object' && v !== null) return v;
  const text = context(name);
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    throw new Error(`context ${name}: expected JSON`);
  }
};

const retention = number('logRetentionDays');
if (retention !== undefined && !(Object.values(RetentionDays) as unknown[]).includes(retention)) {
  throw new Error(
    'context logRetentionDays: expected a retention CloudWatch accepts (1, 3, 5, 7, 14, 30, 60, 90, …)',
  );
}
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
  // Both are checked at synth, naming any bad field: the settings by the function's own rules.
  alarmThresholds: json('alarmThresholds') as AlarmThresholds | undefined,
  settings: json('settings') as ProxySettings | undefined,
  dataRemovalPolicy: context('destroyData') === 'true' ? RemovalPolicy.DESTROY : undefined,
  env: { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION },
});
