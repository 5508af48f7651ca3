import { afterEach, describe, expect, it, vi } from 'vitest';
import { EmfMetrics } from '../../lambda/adapters/emf-metrics.js';

interface Emf {
  _aws: {
    Timestamp: number;
    CloudWatchMetrics: Array<{
      Namespace: string;
      Dimensions: string[][];
      Metrics: Array<{ Name: string; Unit: string }>;
    }>;
  };
  [key: string]: unknown;
}

describe('Class: EmfMetrics', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('writes one parseable EMF line per request with the expected names, units and dimensions', () => {
    // Prepare
    const lines: string[] = [];
    vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
      lines.push(String(chunk));
      return true;
    });
    const metrics = new EmfMetrics('TestNamespace');

    // Act
    metrics.record({
      group: 'primary',
      status: 429,
      latencyMs: 12.5,
      timeToFirstByteMs: 7,
      attempts: 4,
      retries: 0,
      upstreamErrors: { transient: 0, quota: 4, deadKey: 0 },
      keyCooldowns: 4,
      refusal: 'keys_exhausted',
    });

    // Assess
    const emf = lines.map((l) => JSON.parse(l) as Emf);
    expect(emf).toHaveLength(1);
    const [line] = emf;
    const directive = line!._aws.CloudWatchMetrics[0]!;
    expect(directive.Namespace).toBe('TestNamespace');
    expect(directive.Dimensions).toEqual([['service']]);
    expect(line).toMatchObject({ service: 'proxy' });
    expect(line).not.toHaveProperty('group');
    const units = Object.fromEntries(directive.Metrics.map((m) => [m.Name, m.Unit]));
    expect(units).toMatchObject({
      Requests: 'Count',
      Latency: 'Milliseconds',
      TimeToFirstByte: 'Milliseconds',
      UpstreamQuotaErrors: 'Count',
      KeyCooldowns: 'Count',
      KeysExhaustedRefusals: 'Count',
      CircuitOpenRefusals: 'Count',
      FallbacksServed: 'Count',
    });
    expect(line).toMatchObject({
      Requests: 1,
      Latency: 12.5,
      TimeToFirstByte: 7,
      UpstreamQuotaErrors: 4,
      KeyCooldowns: 4,
      KeysExhaustedRefusals: 1,
      CircuitOpenRefusals: 0,
      ClientErrors: 0,
      FallbacksServed: 0,
    });
  });

  it('counts a request a fallback model served', () => {
    // Prepare
    const lines: string[] = [];
    vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
      lines.push(String(chunk));
      return true;
    });
    const metrics = new EmfMetrics('TestNamespace');
    const served = {
      group: 'primary',
      status: 200,
      latencyMs: 30,
      timeToFirstByteMs: 9,
      attempts: 3,
      retries: 0,
      upstreamErrors: { transient: 0, quota: 2, deadKey: 0 },
      keyCooldowns: 2,
      refusal: undefined,
    };

    // Act
    metrics.record({ ...served, fallback: true });
    metrics.record(served);

    // Assess
    const emf = lines.map((l) => JSON.parse(l) as Emf);
    expect(emf.map((line) => line.FallbacksServed)).toEqual([1, 0]);
    expect(emf[0]).toMatchObject({ UpstreamAttempts: 3, UpstreamQuotaErrors: 2, KeysExhaustedRefusals: 0 });
  });
});
