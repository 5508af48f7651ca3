import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import type { GroupSummary } from '../core/health-check.js';
import type { MetricsSink, RequestMetrics } from '../core/metrics.js';

/**
 * Request metrics as CloudWatch embedded metric format (Powertools Metrics): one EMF line per request,
 * dimension `service` only — one series per metric, which alarms can read directly; the group is in the
 * request's log line.
 */
export class EmfMetrics implements MetricsSink {
  private readonly metrics: Metrics;

  constructor(namespace: string, serviceName = 'proxy') {
    this.metrics = new Metrics({ namespace, serviceName });
  }

  record(m: RequestMetrics): void {
    const add = (name: string, unit: (typeof MetricUnit)[keyof typeof MetricUnit], value: number) =>
      this.metrics.addMetric(name, unit, value);
    add('Requests', MetricUnit.Count, 1);
    add('Latency', MetricUnit.Milliseconds, m.latencyMs);
    if (m.timeToFirstByteMs !== undefined)
      add('TimeToFirstByte', MetricUnit.Milliseconds, m.timeToFirstByteMs);
    add('UpstreamAttempts', MetricUnit.Count, m.attempts);
    add('Retries', MetricUnit.Count, m.retries);
    add(
      'ClientErrors',
      MetricUnit.Count,
      m.status >= 400 && m.status < 500 && m.refusal === undefined ? 1 : 0,
    );
    add('ServerErrors', MetricUnit.Count, m.status >= 500 ? 1 : 0);
    add('UpstreamTransientErrors', MetricUnit.Count, m.upstreamErrors.transient);
    add('UpstreamQuotaErrors', MetricUnit.Count, m.upstreamErrors.quota);
    add('UpstreamDeadKeyErrors', MetricUnit.Count, m.upstreamErrors.deadKey);
    add('KeyCooldowns', MetricUnit.Count, m.keyCooldowns);
    add('KeysExhaustedRefusals', MetricUnit.Count, m.refusal === 'keys_exhausted' ? 1 : 0);
    add('CircuitOpenRefusals', MetricUnit.Count, m.refusal === 'circuit_open' ? 1 : 0);
    add('ClientRateLimited', MetricUnit.Count, m.refusal === 'client_rate_limited' ? 1 : 0);
    add('StateUnavailableRefusals', MetricUnit.Count, m.refusal === 'state_unavailable' ? 1 : 0);
    if (m.inputTokens !== undefined) add('InputTokens', MetricUnit.Count, m.inputTokens);
    if (m.outputTokens !== undefined) add('OutputTokens', MetricUnit.Count, m.outputTokens);
    if (m.openCircuits !== undefined) add('OpenCircuits', MetricUnit.Count, m.openCircuits);
    // Published at once: the line is out before the request's stream ends.
    this.metrics.publishStoredMetrics();
  }
}

/** The health check's counts: per group (for the dashboard) and over all groups (for the alarms). */
export class HealthMetrics {
  private readonly metrics: Metrics;

  constructor(namespace: string) {
    this.metrics = new Metrics({ namespace, serviceName: 'health-check' });
  }

  publish(groups: readonly GroupSummary[], skipped: number): void {
    const put = (s: Omit<GroupSummary, 'group'>) => {
      this.metrics.addMetric('TotalKeys', MetricUnit.Count, s.total);
      this.metrics.addMetric('HealthyKeys', MetricUnit.Count, s.healthy);
      this.metrics.addMetric('CoolingKeys', MetricUnit.Count, s.cooling);
      this.metrics.addMetric('InvalidKeys', MetricUnit.Count, s.invalid);
      this.metrics.addMetric('DisabledKeys', MetricUnit.Count, s.disabled);
    };
    for (const g of groups) {
      this.metrics.addDimension('group', g.group);
      put(g);
      this.metrics.publishStoredMetrics();
    }
    const all = groups.reduce(
      (a, g) => ({
        total: a.total + g.total,
        healthy: a.healthy + g.healthy,
        cooling: a.cooling + g.cooling,
        invalid: a.invalid + g.invalid,
        disabled: a.disabled + g.disabled,
      }),
      { total: 0, healthy: 0, cooling: 0, invalid: 0, disabled: 0 },
    );
    put(all);
    // Unhealthy = invalid: keys an operator disabled are parked on purpose and must not keep alarms on.
    this.metrics.addMetric('UnhealthyKeys', MetricUnit.Count, all.invalid);
    this.metrics.addMetric(
      'UnhealthyKeyPercent',
      MetricUnit.Percent,
      all.total === 0 ? 0 : (100 * all.invalid) / all.total,
    );
    this.metrics.addMetric('KeysNotChecked', MetricUnit.Count, skipped);
    this.metrics.addMetric('HealthCheckRuns', MetricUnit.Count, 1);
    this.metrics.publishStoredMetrics();
  }
}
