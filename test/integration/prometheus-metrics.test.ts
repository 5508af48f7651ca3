import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chatBody, type Harness, KEYS, postChat, startHarness, TOKEN } from '../support/harness.js';

const PRIMARY = [KEYS[0]!, KEYS[1]!];
const SPARE = KEYS[2]!;

/** One sample of the text format: `name{label="value",…} number`. */
interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** Parses Prometheus' text format strictly enough to fail on anything malformed. */
function parseExposition(text: string): Sample[] {
  const samples: Sample[] = [];
  const typed = new Set<string>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const meta = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.+)$/.exec(line);
    if (meta !== null) {
      if (meta[1] === 'TYPE') typed.add(meta[2]!);
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (-?[0-9.e+]+|NaN|\+Inf|-Inf)$/.exec(line);
    if (m === null) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const pair of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?/g)) {
      labels[pair[1]!] = pair[2]!;
    }
    const family = m[1]!.replace(/_(bucket|sum|count)$/, '');
    if (!typed.has(m[1]!) && !typed.has(family)) throw new Error(`sample before its TYPE: ${line}`);
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return samples;
}

/** The value of the one sample with this name and (at least) these labels; 0 when there is none. */
function sampleValue(samples: readonly Sample[], name: string, labels: Record<string, string> = {}): number {
  const found = samples.filter(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
  if (found.length > 1) throw new Error(`${found.length} samples of ${name} match`);
  return found[0]?.value ?? 0;
}

describe('Integration: Prometheus /metrics on its own port', () => {
  let h: Harness;

  const scrape = async () => {
    const res = await fetch(`${h.server.metricsUrl}/metrics`);
    const text = await res.text();
    return { res, text, samples: parseExposition(text) };
  };

  beforeAll(async () => {
    h = await startHarness({
      config: {
        server: { metrics_port: 0 },
        policy: { circuit_failure_threshold: 2, transient_cooldown_ms: 0 },
      },
      groups: (fake) => [
        { name: 'primary', api_keys: PRIMARY, target_url: fake.openAiBase, models: ['gemini-2.5-flash'] },
        { name: 'spare', api_keys: [SPARE], target_url: fake.openAiBase, models: ['gemini-2.5-pro'] },
      ],
    });
  });
  afterAll(async () => {
    await h.close();
  });

  it('counts requests, Gemini attempts, cooldowns, refusals and tokens, and keys by state', async () => {
    // Prepare: a success; then both primary keys answer 429 (cooled, refused); then a refusal without a call
    expect((await postChat(h)).status).toBe(200);
    h.fake.failNext(PRIMARY[0]!, 1, 429);
    h.fake.failNext(PRIMARY[1]!, 1, 429);
    expect((await postChat(h)).status).toBe(429);
    expect((await postChat(h)).status).toBe(429);
    expect((await postChat(h, chatBody(), { authorization: 'Bearer wrong' })).status).toBe(401);

    // Act
    const { res, text, samples } = await scrape();

    // Assess: the exposition
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const flash = { group: 'primary', model: 'gemini-2.5-flash' };
    expect(sampleValue(samples, 'gemini_proxy_requests_total', { ...flash, status: '200' })).toBe(1);
    expect(sampleValue(samples, 'gemini_proxy_requests_total', { ...flash, status: '429' })).toBe(1);
    // The last 429 made no call: it has no group, as the 401 has neither group nor model
    expect(sampleValue(samples, 'gemini_proxy_requests_total', { group: 'none', status: '429' })).toBe(1);
    expect(
      sampleValue(samples, 'gemini_proxy_requests_total', { group: 'none', model: 'none', status: '401' }),
    ).toBe(1);
    const attempts = (outcome: string) =>
      sampleValue(samples, 'gemini_proxy_upstream_attempts_total', { group: 'primary', outcome });
    expect([attempts('success'), attempts('quota'), attempts('transient'), attempts('dead_key')]).toEqual([
      1, 2, 0, 0,
    ]);
    expect(sampleValue(samples, 'gemini_proxy_key_cooldowns_total', { group: 'primary' })).toBe(2);
    expect(sampleValue(samples, 'gemini_proxy_refusals_total', { reason: 'keys_exhausted' })).toBe(2);
    const input = h.metrics.reduce((n, m) => n + (m.inputTokens ?? 0), 0);
    expect(input).toBeGreaterThan(0);
    expect(sampleValue(samples, 'gemini_proxy_tokens_total', { ...flash, direction: 'input' })).toBe(input);
    expect(sampleValue(samples, 'gemini_proxy_tokens_total', { ...flash, direction: 'output' })).toBe(5);
    expect(sampleValue(samples, 'gemini_proxy_request_duration_seconds_count', { group: 'primary' })).toBe(2);
    expect(sampleValue(samples, 'gemini_proxy_request_duration_seconds_count', { group: 'none' })).toBe(2);
    // Keys by state, read at scrape time
    const keys = (group: string, state: string) =>
      sampleValue(samples, 'gemini_proxy_keys', { group, state });
    expect([keys('primary', 'cooling'), keys('primary', 'active'), keys('spare', 'active')]).toEqual([
      2, 0, 1,
    ]);
    expect(keys('primary', 'invalid') + keys('primary', 'disabled')).toBe(0);
    expect(sampleValue(samples, 'gemini_proxy_circuits', { state: 'open' })).toBe(0);
    // Nothing secret in any label: no key, no key id, no token
    const detailed = (await (
      await fetch(`${h.url}/health/detailed`, { headers: { authorization: `Bearer ${TOKEN}` } })
    ).json()) as { groups: Array<{ keys: Array<{ id: string }> }> };
    const ids = detailed.groups.flatMap((g) => g.keys.map((k) => k.id));
    expect(ids).toHaveLength(3);
    for (const secret of [...KEYS, TOKEN, ...ids]) expect(text).not.toContain(secret);
  });

  it('counts a dead key at scrape time', async () => {
    // Prepare: the spare group's only key dies
    h.fake.killKey(SPARE, 'API_KEY_INVALID');
    const res = await postChat(h, chatBody('gemini-2.5-pro'));
    await res.arrayBuffer();

    // Act
    const { samples } = await scrape();

    // Assess
    expect(sampleValue(samples, 'gemini_proxy_keys', { group: 'spare', state: 'invalid' })).toBe(1);
    expect(
      sampleValue(samples, 'gemini_proxy_upstream_attempts_total', { group: 'spare', outcome: 'dead_key' }),
    ).toBe(1);
  });

  it('keeps its counts across a reload and shows the keys of the new configuration', async () => {
    // Prepare
    const before = sampleValue((await scrape()).samples, 'gemini_proxy_requests_total', {
      group: 'primary',
      status: '200',
    });

    // Act: a third key in the primary group
    const groups = h.server.config.groups.map((g) =>
      g.name === 'primary' ? { ...g, api_keys: [...g.api_keys, KEYS[3]!] } : g,
    );
    h.server.reload({ ...h.server.config, groups });
    const { samples } = await scrape();

    // Assess
    expect(sampleValue(samples, 'gemini_proxy_requests_total', { group: 'primary', status: '200' })).toBe(
      before,
    );
    expect(sampleValue(samples, 'gemini_proxy_keys', { group: 'primary', state: 'active' })).toBe(1);
    expect(sampleValue(samples, 'gemini_proxy_keys', { group: 'primary', state: 'cooling' })).toBe(2);
  });

  it('is not served on the main port, and the metrics port serves nothing else', async () => {
    // Act
    const main = await fetch(`${h.url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
    const other = await fetch(`${h.server.metricsUrl}/v1/models`);
    const post = await fetch(`${h.server.metricsUrl}/metrics`, { method: 'POST' });

    // Assess
    expect(main.status).toBe(404);
    expect(((await main.json()) as { error: { code: string } }).error.code).toBe('not_found');
    expect(other.status).toBe(404);
    expect(post.status).toBe(405);
    expect(new URL(h.server.metricsUrl!).hostname).toBe('127.0.0.1');
  });

  it('counts open circuits at scrape time', async () => {
    // Prepare: two requests that every primary key (the reload's too) fails with 503 open the group's circuit
    for (const key of [...PRIMARY, KEYS[3]!]) h.fake.failNext(key, 100, 503);
    for (let i = 0; i < 2; i++) await (await postChat(h)).arrayBuffer();

    // Act
    const { samples } = await scrape();

    // Assess
    expect(sampleValue(samples, 'gemini_proxy_circuits', { state: 'open' })).toBe(1);
    expect(
      sampleValue(samples, 'gemini_proxy_upstream_attempts_total', {
        group: 'primary',
        outcome: 'transient',
      }),
    ).toBeGreaterThanOrEqual(2);
  });
});
