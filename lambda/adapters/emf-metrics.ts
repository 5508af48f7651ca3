import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import type { GroupSummary } from '../core/health-check.js';
import type { MetricsSink, RequestMetrics } from '../core/metrics.js';

/** Adds metrics to `metrics`, counts unless a unit is given. */
function metricAdder(metrics: Metrics) {
  return (
    name: string,
    value: number,
    unit: (typeof MetricUnit)[keyof typeof MetricUnit] = MetricUnit.Count,
  ) => metrics.addMetric(name, unit, value);
}

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
    const add = metricAdder(this.metrics);
    add('Requests', 1);
    add('Latency', m.latencyMs, MetricUnit.Milliseconds);
    if (m.timeToFirstByteMs !== undefined)
      add('TimeToFirstByte', m.timeToFirstByteMs, MetricUnit.Milliseconds);
    add('UpstreamAttempts', m.attempts);
    add('Retries', m.retries);
    add('ClientErrors', m.status >= 400 && m.status < 500 && m.refusal === undefined ? 1 : 0);
    add('ServerErrors', m.status >= 500 ? 1 : 0);
    add('UpstreamTransientErrors', m.upstreamErrors.transient);
    add('UpstreamQuotaErrors', m.upstreamErrors.quota);
    add('UpstreamDeadKeyErrors', m.upstreamErrors.deadKey);
    add('KeyCooldowns', m.keyCooldowns);
    add('KeysExhaustedRefusals', m.refusal === 'keys_exhausted' ? 1 : 0);
    add('CircuitOpenRefusals', m.refusal === 'circuit_open' ? 1 : 0);
    add('ClientRateLimited', m.refusal === 'client_rate_limited' ? 1 : 0);
    add('StateUnavailableRefusals', m.refusal === 'state_unavailable' ? 1 : 0);
    add('ModelUnavailableRefusals', m.refusal === 'model_unavailable' ? 1 : 0);
    add('OverTokenBudgetRefusals', m.refusal === 'over_token_budget' ? 1 : 0);
    // The proxy's own quota refusals by the limit spent: requests a minute, input tokens a minute, a day.
    add('BudgetRefusalsRpm', m.budgetRefusal === 'rpm' ? 1 : 0);
    add('BudgetRefusalsTpm', m.budgetRefusal === 'tpm' ? 1 : 0);
    add('BudgetRefusalsRpd', m.budgetRefusal === 'rpd' ? 1 : 0);
    add('UnavailableParks', m.unavailableParks ?? 0);
    add('LimitsLearned', m.limitsLearned ?? 0);
    add('FallbacksServed', m.fallback === true ? 1 : 0);
    if (m.inputTokens !== undefined) add('InputTokens', m.inputTokens);
    if (m.outputTokens !== undefined) add('OutputTokens', m.outputTokens);
    if (m.openCircuits !== undefined) add('OpenCircuits', m.openCircuits);
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
    const add = metricAdder(this.metrics);
    const put = (s: Omit<GroupSummary, 'group'>) => {
      add('TotalKeys', s.total);
      add('HealthyKeys', s.healthy);
      add('CoolingKeys', s.cooling);
      add('InvalidKeys', s.invalid);
      add('DisabledKeys', s.disabled);
    };
    const all = { total: 0, healthy: 0, cooling: 0, invalid: 0, disabled: 0 };
    for (const g of groups) {
      this.metrics.addDimension('group', g.group);
      put(g);
      this.metrics.publishStoredMetrics();
      for (const count of Object.keys(all) as Array<keyof typeof all>) all[count] += g[count];
    }
    put(all);
    // Unhealthy = invalid: keys an operator disabled are parked on purpose and must not keep alarms on.
    add('UnhealthyKeys', all.invalid);
    add('UnhealthyKeyPercent', all.total === 0 ? 0 : (100 * all.invalid) / all.total, MetricUnit.Percent);
    add('KeysNotChecked', skipped);
    add('HealthCheckRuns', 1);
    this.metrics.publishStoredMetrics();
  }
}
