import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import type { MetricsSink, RequestMetrics } from '../core/metrics.js';

/**
 * Request metrics as CloudWatch embedded metric format (Powertools Metrics): one EMF line per request,
 * dimensions `service` and `group` only, so cardinality stays low whatever clients send.
 */
export class EmfMetrics implements MetricsSink {
  private readonly metrics: Metrics;

  constructor(namespace: string, serviceName = 'proxy') {
    this.metrics = new Metrics({ namespace, serviceName });
  }

  record(m: RequestMetrics): void {
    const add = (name: string, unit: (typeof MetricUnit)[keyof typeof MetricUnit], value: number) =>
      this.metrics.addMetric(name, unit, value);
    this.metrics.addDimension('group', m.group === '' ? 'none' : m.group);
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
    // Published at once: the line is out before the request's stream ends.
    this.metrics.publishStoredMetrics();
  }
}
