import { CfnOutput, type Duration, type RemovalPolicy, Stack, type StackProps } from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import type { AlarmThresholds } from './constructs/alarm-thresholds.js';
import { DEFAULT_METRICS_NAMESPACE } from './constructs/gateway-function.js';
import { HealthCheck } from './constructs/health-check.js';
import { KeyStateTable } from './constructs/key-state-table.js';
import { Monitoring } from './constructs/monitoring.js';
import { ProxyFunction, type ProxyFunctionOptions } from './constructs/proxy-function.js';
import { ProxySecrets } from './constructs/proxy-secrets.js';

export interface GeminiProxyStackProps extends StackProps, ProxyFunctionOptions {
  /** For the table and secrets. @default RemovalPolicy.RETAIN */
  readonly dataRemovalPolicy?: RemovalPolicy;
  /** Where alarms are emailed (the address must confirm the SNS subscription). @default none: no email */
  readonly alertEmail?: string;
  /** How often every key is checked; whole minutes. @default Duration.minutes(5) */
  readonly healthCheckInterval?: Duration;
  /** Checked at synth: an unknown field or a value out of range fails it. @default each threshold's own default */
  readonly alarmThresholds?: AlarmThresholds;
}

/** The whole gateway: key-state table, secrets, the streaming proxy function and its URL, the scheduled key check, dashboard and alarms. */
export class GeminiProxyStack extends Stack {
  public readonly state: KeyStateTable;
  public readonly secrets: ProxySecrets;
  public readonly proxy: ProxyFunction;
  public readonly healthCheck: HealthCheck;
  public readonly monitoring: Monitoring;

  constructor(scope: Construct, id: string, props: GeminiProxyStackProps = {}) {
    super(scope, id, props);
    const namespace = props.metricsNamespace ?? DEFAULT_METRICS_NAMESPACE;
    this.state = new KeyStateTable(this, 'KeyState', { removalPolicy: props.dataRemovalPolicy });
    this.secrets = new ProxySecrets(this, 'Secrets', { removalPolicy: props.dataRemovalPolicy });
    this.proxy = new ProxyFunction(this, 'Proxy', {
      memorySize: props.memorySize,
      timeout: props.timeout,
      reservedConcurrency: props.reservedConcurrency,
      logRetention: props.logRetention,
      secretCacheAge: props.secretCacheAge,
      logLevel: props.logLevel,
      settings: props.settings,
      metricsNamespace: namespace,
      table: this.state.table,
      keysSecret: this.secrets.keys,
      tokensSecret: this.secrets.tokens,
    });
    this.healthCheck = new HealthCheck(this, 'HealthCheck', {
      table: this.state.table,
      keysSecret: this.secrets.keys,
      interval: props.healthCheckInterval,
      metricsNamespace: namespace,
      settingsJson: this.proxy.settingsJson,
      logRetention: props.logRetention,
      logLevel: props.logLevel,
    });
    this.monitoring = new Monitoring(this, 'Monitoring', {
      namespace,
      proxyFunction: this.proxy.fn,
      proxyLogGroup: this.proxy.logGroup,
      healthCheckFunction: this.healthCheck.fn,
      healthCheckInterval: this.healthCheck.interval,
      alertEmail: props.alertEmail,
      thresholds: props.alarmThresholds,
    });

    new CfnOutput(this, 'FunctionUrl', { value: this.proxy.url.url, description: 'The proxy function URL' });
    new CfnOutput(this, 'OpenAiBaseUrl', {
      value: `${this.proxy.url.url}v1`,
      description: 'Base URL for OpenAI clients',
    });
    new CfnOutput(this, 'TableName', { value: this.state.table.tableName });
    new CfnOutput(this, 'KeysSecretName', { value: this.secrets.keys.secretName });
    new CfnOutput(this, 'TokensSecretName', { value: this.secrets.tokens.secretName });
    new CfnOutput(this, 'AlertTopicArn', { value: this.monitoring.topic.topicArn });
    // What `gemini-proxy check` invokes.
    new CfnOutput(this, 'HealthCheckFunctionName', { value: this.healthCheck.fn.functionName });
  }
}
