import { Duration, Validations } from 'aws-cdk-lib';
import {
  Alarm,
  ComparisonOperator,
  Dashboard,
  GraphWidget,
  type IMetric,
  LogQueryVisualizationType,
  LogQueryWidget,
  MathExpression,
  Metric,
  SingleValueWidget,
  TreatMissingData,
} from 'aws-cdk-lib/aws-cloudwatch';
import { SnsAction } from 'aws-cdk-lib/aws-cloudwatch-actions';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import type { ILogGroup } from 'aws-cdk-lib/aws-logs';
import { Topic } from 'aws-cdk-lib/aws-sns';
import { EmailSubscription } from 'aws-cdk-lib/aws-sns-subscriptions';
import { Construct } from 'constructs';
import { type AlarmThresholds, checkAlarmThresholds } from './alarm-thresholds.js';

export interface MonitoringProps {
  /** The CloudWatch namespace both functions' metrics go to. */
  readonly namespace: string;
  readonly proxyFunction: IFunction;
  /** The proxy's log group: its JSON `request` lines feed the usage widgets (Logs Insights). */
  readonly proxyLogGroup: ILogGroup;
  readonly healthCheckFunction: IFunction;
  readonly healthCheckInterval: Duration;
  /** Where alarms (and their recovery) are emailed. @default none: no subscription */
  readonly alertEmail?: string;
  /** Checked at synth ({@link checkAlarmThresholds}). @default each threshold's own default */
  readonly thresholds?: AlarmThresholds;
}

const FIVE_MINUTES = Duration.minutes(5);

/**
 * Logs Insights queries over the proxy's `request` lines (lambda/core/forwarding/request-log.ts): who and
 * which key used how much, without a custom metric per key or client (each would cost every month).
 * `client` is the token's name or id; `keyId` a hash prefix: no secret is ever in a line.
 */
export const USAGE_QUERIES = {
  'Top keys by errors (answers ≥ 400)': [
    'filter message = "request" and ispresent(keyId) and status >= 400',
    'stats count(*) as errors by keyId',
    'sort errors desc',
    'limit 20',
  ],
  'Top clients by requests': [
    'filter message = "request" and ispresent(client)',
    'stats count(*) as requests by client',
    'sort requests desc',
    'limit 20',
  ],
  'Top clients by tokens': [
    'filter message = "request" and ispresent(client) and ispresent(inputTokens)',
    'fields inputTokens + outputTokens as tokens',
    'stats sum(tokens) as totalTokens, sum(inputTokens) as input, sum(outputTokens) as output by client',
    'sort totalTokens desc',
    'limit 20',
  ],
} as const;

/** Dashboard, alarms and the SNS topic that emails the operator when one fires and when it recovers. */
export class Monitoring extends Construct {
  public readonly topic: Topic;
  public readonly dashboard: Dashboard;
  public readonly alarms: Record<string, Alarm> = {};

  constructor(scope: Construct, id: string, props: MonitoringProps) {
    super(scope, id);
    const t = checkAlarmThresholds(props.thresholds);
    this.topic = new Topic(this, 'Alerts', { displayName: 'Gemini proxy alerts', enforceSSL: true });
    Validations.of(this.topic).acknowledge({
      id: 'AwsSolutions-SNS2',
      reason:
        'Alarm notifications carry alarm names and numbers only, no keys or tokens; CloudWatch cannot publish to a topic under the AWS-managed SNS key, and a customer-managed key would add a monthly cost for nothing secret.',
    });
    if (props.alertEmail !== undefined) this.topic.addSubscription(new EmailSubscription(props.alertEmail));

    const proxy = (name: string, statistic = 'Sum', period = FIVE_MINUTES) =>
      new Metric({
        namespace: props.namespace,
        metricName: name,
        dimensionsMap: { service: 'proxy' },
        statistic,
        period,
      });
    const health = (name: string) =>
      new Metric({
        namespace: props.namespace,
        metricName: name,
        dimensionsMap: { service: 'health-check' },
        statistic: 'Maximum',
        period: props.healthCheckInterval,
      });
    const errorRate = new MathExpression({
      // Quiet periods don't page: below the minimum number of requests the rate reads 0.
      expression: `IF(requests >= ${t.errorRateMinRequests}, 100 * errors / requests, 0)`,
      usingMetrics: { errors: proxy('ServerErrors'), requests: proxy('Requests') },
      period: FIVE_MINUTES,
      label: 'Error rate (%)',
    });

    const alarm = (
      name: string,
      metric: IMetric,
      threshold: number,
      description: string,
      options: { missing?: TreatMissingData; below?: boolean; strictlyAbove?: boolean } = {},
    ) => {
      const a = new Alarm(this, name, {
        alarmDescription: description,
        metric,
        threshold,
        evaluationPeriods: 1,
        comparisonOperator: options.below
          ? ComparisonOperator.LESS_THAN_THRESHOLD
          : options.strictlyAbove
            ? ComparisonOperator.GREATER_THAN_THRESHOLD
            : ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: options.missing ?? TreatMissingData.NOT_BREACHING,
      });
      a.addAlarmAction(new SnsAction(this.topic));
      a.addOkAction(new SnsAction(this.topic));
      this.alarms[name] = a;
      return a;
    };

    // "More than N" thresholds become ">= N + 1" on whole counts.
    alarm(
      'UnhealthyKeys',
      health('UnhealthyKeys'),
      t.unhealthyKeys + 1,
      'More keys are invalid than the threshold: replace them, or re-enable their API.',
    );
    alarm(
      'UnhealthyKeyShare',
      health('UnhealthyKeyPercent'),
      t.unhealthyKeyPercent,
      'More than half of the keys are invalid.',
      { strictlyAbove: true },
    );
    alarm('ErrorRate', errorRate, t.errorRatePercent, 'Too many requests answered 5xx over 5 minutes.');
    alarm(
      'SlowFirstByte',
      proxy('TimeToFirstByte', 'p90'),
      t.ttfbP90Ms,
      "p90 time to Gemini's first byte is too high.",
    );
    alarm(
      'CircuitOpen',
      proxy('CircuitOpenRefusals'),
      1,
      'A circuit to Gemini opened: it kept failing and requests are being refused.',
    );
    alarm(
      'StateUnavailable',
      proxy('StateUnavailableRefusals'),
      1,
      'Requests that need a shared budget were refused: DynamoDB was down (state.on_outage: refuse) or too slow.',
    );
    alarm(
      'KeysExhausted',
      proxy('KeysExhaustedRefusals'),
      t.keysExhaustedRefusals,
      'Requests refused because every key was cooling or out of budget: add keys or raise limits.',
    );
    alarm(
      'HealthCheckNotReporting',
      new Metric({
        namespace: props.namespace,
        metricName: 'HealthCheckRuns',
        dimensionsMap: { service: 'health-check' },
        statistic: 'Sum',
        period: Duration.minutes(props.healthCheckInterval.toMinutes() * 3),
      }),
      1,
      'The key health check has not reported for three intervals (missing data counts as not reporting).',
      { missing: TreatMissingData.BREACHING, below: true },
    );
    alarm(
      'HealthCheckErrors',
      props.healthCheckFunction.metricErrors({ period: FIVE_MINUTES }),
      1,
      'The health-check function failed.',
    );
    alarm(
      'ProxyErrors',
      props.proxyFunction.metricErrors({ period: FIVE_MINUTES }),
      1,
      'The proxy function raised errors.',
    );
    alarm(
      'ProxyThrottles',
      props.proxyFunction.metricThrottles({ period: FIVE_MINUTES }),
      1,
      'The proxy function was throttled (reserved concurrency reached?).',
    );

    const keys = ['TotalKeys', 'HealthyKeys', 'CoolingKeys', 'InvalidKeys', 'DisabledKeys'].map((n) =>
      health(n),
    );
    this.dashboard = new Dashboard(this, 'Dashboard', { dashboardName: undefined });
    this.dashboard.addWidgets(
      new SingleValueWidget({ title: 'Keys (all groups)', metrics: keys, width: 24 }),
      new GraphWidget({
        title: 'Requests and errors',
        left: [proxy('Requests'), proxy('ServerErrors'), proxy('ClientErrors')],
        right: [errorRate],
        width: 12,
      }),
      new GraphWidget({
        title: 'Latency and time to first byte (p50, p90)',
        left: [
          proxy('Latency', 'p50'),
          proxy('Latency', 'p90'),
          proxy('TimeToFirstByte', 'p50'),
          proxy('TimeToFirstByte', 'p90'),
        ],
        width: 12,
      }),
      new GraphWidget({
        title: 'Upstream errors by class, retries, cooldowns',
        left: [
          proxy('UpstreamTransientErrors'),
          proxy('UpstreamQuotaErrors'),
          proxy('UpstreamDeadKeyErrors'),
          proxy('Retries'),
          proxy('KeyCooldowns'),
        ],
        width: 12,
      }),
      new GraphWidget({
        title: 'Tokens (from Gemini usage) and open circuits',
        left: [proxy('InputTokens'), proxy('OutputTokens')],
        right: [proxy('OpenCircuits', 'Maximum')],
        width: 12,
      }),
      new GraphWidget({
        title: 'Refusals without calling Gemini',
        left: [
          proxy('KeysExhaustedRefusals'),
          proxy('CircuitOpenRefusals'),
          proxy('ClientRateLimited'),
          proxy('StateUnavailableRefusals'),
        ],
        width: 12,
      }),
      new GraphWidget({ title: 'Keys over time', left: keys, width: 12 }),
      new GraphWidget({
        title: 'Proxy Lambda: errors, throttles, duration, concurrency',
        left: [props.proxyFunction.metricErrors(), props.proxyFunction.metricThrottles()],
        right: [
          props.proxyFunction.metricDuration({ statistic: 'p90' }),
          props.proxyFunction.metric('ConcurrentExecutions', { statistic: 'Maximum' }),
        ],
        width: 12,
      }),
    );
    this.dashboard.addWidgets(
      ...Object.entries(USAGE_QUERIES).map(
        ([title, lines]) =>
          new LogQueryWidget({
            title,
            logGroupNames: [props.proxyLogGroup.logGroupName],
            queryLines: [...lines],
            view: LogQueryVisualizationType.TABLE,
            width: 8,
            height: 8,
          }),
      ),
    );
  }
}
