import { describe, expect, it } from 'vitest';
import { PrometheusMetrics } from '../../lambda/adapters/prometheus-metrics.js';
import type { RequestMetrics } from '../../lambda/core/metrics.js';

const request = (overrides: Partial<RequestMetrics> = {}): RequestMetrics => ({
  group: 'g',
  model: 'gemini-2.5-flash',
  status: 200,
  latencyMs: 120,
  timeToFirstByteMs: 80,
  attempts: 1,
  retries: 0,
  upstreamErrors: { transient: 0, quota: 0, deadKey: 0 },
  keyCooldowns: 0,
  refusal: undefined,
  ...overrides,
});

describe('Class: PrometheusMetrics', () => {
  it('counts a Gemini error passed on to the client as outcome "other", not "success"', async () => {
    // Prepare
    const metrics = new PrometheusMetrics(() => Promise.reject(new Error('unused')));

    // Act: a 400 Gemini answered after one 503 on another key
    metrics.record(
      request({ status: 400, attempts: 2, upstreamErrors: { transient: 1, quota: 0, deadKey: 0 } }),
    );
    const { body } = await metrics.scrape();

    // Assess
    expect(body).toContain('gemini_proxy_upstream_attempts_total{group="g",outcome="other"} 1');
    expect(body).toContain('gemini_proxy_upstream_attempts_total{group="g",outcome="transient"} 1');
    expect(body).not.toContain('outcome="success"');
  });

  it('labels models past the 50th distinct name "other"', async () => {
    // Prepare
    const metrics = new PrometheusMetrics(() => Promise.reject(new Error('unused')));

    // Act
    for (let i = 0; i < 60; i++) metrics.record(request({ model: `gemini-made-up-${i}` }));
    const { body } = await metrics.scrape();

    // Assess
    expect(body).toContain('model="gemini-made-up-49"');
    expect(body).not.toContain('model="gemini-made-up-50"');
    expect(body).toContain('gemini_proxy_requests_total{group="g",model="other",status="200"} 10');
  });

  it('still answers a scrape when the key states cannot be read, without key gauges', async () => {
    // Prepare
    const metrics = new PrometheusMetrics(() => Promise.reject(new Error('state unavailable')));
    metrics.record(request());

    // Act
    const { body, contentType } = await metrics.scrape();

    // Assess
    expect(contentType).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(body).toContain('gemini_proxy_requests_total{group="g",model="gemini-2.5-flash",status="200"} 1');
    expect(body).not.toMatch(/^gemini_proxy_keys\{/m);
  });

  it('keeps its counts apart from another instance (a registry each)', async () => {
    // Prepare
    const one = new PrometheusMetrics(() => Promise.reject(new Error('unused')));
    const two = new PrometheusMetrics(() => Promise.reject(new Error('unused')));

    // Act
    one.record(request());
    one.record(request());
    two.record(request());

    // Assess
    expect((await one.scrape()).body).toContain('status="200"} 2');
    expect((await two.scrape()).body).toContain('status="200"} 1');
  });
});
