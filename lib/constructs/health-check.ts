import { Duration } from 'aws-cdk-lib';
import type { ITableV2 } from 'aws-cdk-lib/aws-dynamodb';
import { Rule, Schedule } from 'aws-cdk-lib/aws-events';
import { LambdaFunction } from 'aws-cdk-lib/aws-events-targets';
import type { ISecret } from 'aws-cdk-lib/aws-secretsmanager';
import type { Construct } from 'constructs';
import { GatewayFunction, type GatewayFunctionOptions } from './gateway-function.js';

/**
 * The DynamoDB actions the checker uses: conditional updates (and the read a lost race costs), reads, and
 * conditional deletes of expired cooldowns.
 */
export const HEALTH_CHECK_TABLE_ACTIONS = [
  'dynamodb:GetItem',
  'dynamodb:UpdateItem',
  'dynamodb:Query',
  'dynamodb:DeleteItem',
] as const;

export interface HealthCheckProps extends GatewayFunctionOptions {
  readonly table: ITableV2;
  readonly keysSecret: ISecret;
  readonly metricsNamespace: string;
  /** The same `upstream`/`state` settings the proxy has (as JSON). */
  readonly settingsJson: string;
  /** How often every key is checked; whole minutes. @default Duration.minutes(5) */
  readonly interval?: Duration;
  /** Keys checked at once. @default 4 */
  readonly concurrency?: number;
}

/** The scheduled key check: an EventBridge rule runs a {@link GatewayFunction} that validates every key. */
export class HealthCheck extends GatewayFunction {
  public readonly rule: Rule;
  public readonly interval: Duration;

  constructor(scope: Construct, id: string, props: HealthCheckProps) {
    const interval = props.interval ?? Duration.minutes(5);
    const minutes = interval.toSeconds() / 60;
    if (!Number.isInteger(minutes) || minutes < 1) {
      throw new Error('health check interval: expected a whole number of minutes, at least 1');
    }
    const concurrency = props.concurrency ?? 4;
    if (!Number.isInteger(concurrency) || concurrency < 1) {
      throw new Error('health check concurrency: expected a whole number, at least 1');
    }
    super(scope, id, {
      entry: 'health-check/handler.ts',
      memorySize: 256,
      timeout: Duration.minutes(2),
      table: props.table,
      tableActions: HEALTH_CHECK_TABLE_ACTIONS,
      keysSecret: props.keysSecret,
      settingsJson: props.settingsJson,
      metricsNamespace: props.metricsNamespace,
      logRetention: props.logRetention,
      logLevel: props.logLevel,
      environment: { CHECK_CONCURRENCY: String(concurrency) },
      // The next scheduled run is the retry; Lambda's own async retries would just run it thrice.
      retryAttempts: 0,
    });
    this.interval = interval;
    this.rule = new Rule(this, 'Schedule', {
      schedule: Schedule.rate(interval),
      targets: [new LambdaFunction(this.fn, { retryAttempts: 0 })],
    });
  }
}
