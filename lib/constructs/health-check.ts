import { fileURLToPath } from 'node:url';
import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import type { ITableV2 } from 'aws-cdk-lib/aws-dynamodb';
import { Rule, Schedule } from 'aws-cdk-lib/aws-events';
import { LambdaFunction } from 'aws-cdk-lib/aws-events-targets';
import { PolicyStatement, Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { Architecture, LoggingFormat, Runtime } from 'aws-cdk-lib/aws-lambda';
import { NodejsFunction } from 'aws-cdk-lib/aws-lambda-nodejs';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { ISecret } from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import { LAMBDA_BUNDLING } from './proxy-function.js';

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

export interface HealthCheckProps {
  readonly table: ITableV2;
  readonly keysSecret: ISecret;
  /** @default Duration.minutes(5) */
  readonly interval?: Duration;
  /** Keys checked at once. @default 4 */
  readonly concurrency?: number;
  readonly metricsNamespace: string;
  /** The same `upstream`/`state` settings the proxy has (as JSON). */
  readonly settingsJson: string;
  /** @default RetentionDays.ONE_MONTH */
  readonly logRetention?: RetentionDays;
  /** @default 'info' */
  readonly logLevel?: string;
}

const ENTRY = fileURLToPath(new URL('../../lambda/health-check/handler.ts', import.meta.url));

/** The scheduled key check: an EventBridge rule runs a Lambda that validates every key. */
export class HealthCheck extends Construct {
  public readonly fn: NodejsFunction;
  public readonly rule: Rule;
  public readonly interval: Duration;

  constructor(scope: Construct, id: string, props: HealthCheckProps) {
    super(scope, id);
    this.interval = props.interval ?? Duration.minutes(5);
    const minutes = this.interval.toSeconds() / 60;
    if (!Number.isInteger(minutes) || minutes < 1) {
      throw new Error('health check interval: expected a whole number of minutes, at least 1');
    }
    const logGroup = new LogGroup(this, 'Logs', {
      retention: props.logRetention ?? RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    const role = new Role(this, 'Role', { assumedBy: new ServicePrincipal('lambda.amazonaws.com') });
    logGroup.grantWrite(role);
    this.fn = new NodejsFunction(this, 'Function', {
      entry: ENTRY,
      handler: 'handler',
      runtime: Runtime.NODEJS_24_X,
      architecture: Architecture.ARM_64,
      memorySize: 256,
      timeout: Duration.minutes(2),
      role,
      logGroup,
      loggingFormat: LoggingFormat.TEXT,
      environment: {
        TABLE_NAME: props.table.tableName,
        KEYS_SECRET_ID: props.keysSecret.secretArn,
        METRICS_NAMESPACE: props.metricsNamespace,
        LOG_LEVEL: props.logLevel ?? 'info',
        PROXY_SETTINGS: props.settingsJson,
        CHECK_CONCURRENCY: String(props.concurrency ?? 4),
        NODE_OPTIONS: '--enable-source-maps',
      },
      bundling: LAMBDA_BUNDLING,
      // The next scheduled run is the retry; Lambda's own async retries would just run it thrice.
      retryAttempts: 0,
    });
    this.fn.addToRolePolicy(
      new PolicyStatement({ actions: [...HEALTH_CHECK_TABLE_ACTIONS], resources: [props.table.tableArn] }),
    );
    this.fn.addToRolePolicy(
      new PolicyStatement({
        actions: ['secretsmanager:GetSecretValue'],
        resources: [props.keysSecret.secretArn],
      }),
    );
    this.rule = new Rule(this, 'Schedule', {
      schedule: Schedule.rate(this.interval),
      targets: [new LambdaFunction(this.fn, { retryAttempts: 0 })],
    });
  }
}
