import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { classifyUpstreamResponse } from '../../lambda/core/gemini-errors.js';
import { type FakeGemini, startFakeGemini } from '../support/fake-gemini.js';
import { countInputTokens } from '../support/fake-gemini-plan.js';

const KEYS = ['plan-key-a', 'plan-key-b', 'plan-key-c'];
const FLASH = 'gemini-2.5-flash';
const PRO = 'gemini-2.5-pro';
// Windows no test run crosses, for tests about counts rather than time.
const NEVER = 1e13;
const FREE_REQUESTS = 'generativelanguage.googleapis.com/generate_content_free_tier_requests';

interface Answer {
  status: number;
  text: string;
  json: Record<string, unknown>;
}

describe('Fake Gemini: the quota plan', () => {
  let fake: FakeGemini;

  const chat = async (key: string, model: string, content = 'hi', extra: object = {}): Promise<Answer> => {
    const res = await fetch(`${fake.openAiBase}chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model, messages: [{ role: 'user', content }], ...extra }),
    });
    const text = await res.text();
    return {
      status: res.status,
      text,
      json: res.headers.get('content-type')?.includes('json') ? JSON.parse(text) : {},
    };
  };
  const native = async (key: string, model: string, method: string, body: object): Promise<Answer> => {
    const res = await fetch(`${fake.url}/v1beta/models/${model}:${method}`, {
      method: 'POST',
      headers: { 'x-goog-api-key': key, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, text, json: JSON.parse(text) };
  };
  const quotaOf = (answer: Answer) => {
    const outcome = classifyUpstreamResponse(answer.status, answer.text);
    if (outcome.kind !== 'quota') throw new Error(`expected a quota outcome, got ${outcome.kind}`);
    return outcome;
  };

  beforeAll(async () => {
    fake = await startFakeGemini({ keys: KEYS });
  });
  beforeEach(() => fake.reset());
  afterAll(() => fake.close());

  it('lists every quota a request would exceed in one 429, and counts only accepted requests', async () => {
    // Prepare
    fake.setPlan({ models: { [FLASH]: { rpm: 1, tpm: 1000, rpd: 1 } }, windowMs: NEVER, dayMs: NEVER });
    expect((await chat(KEYS[0]!, FLASH)).status).toBe(200);

    // Act
    const refused = await chat(KEYS[0]!, FLASH, 'x'.repeat(4000));

    // Assess
    expect(refused.status).toBe(429);
    const outcome = quotaOf(refused);
    expect(outcome.violations).toEqual([
      {
        metric: 'tpm',
        limit: 1000,
        model: FLASH,
        quotaId: 'GenerateContentInputTokensPerModelPerMinute-FreeTier',
      },
      {
        metric: 'rpm',
        limit: 1,
        model: FLASH,
        quotaId: 'GenerateRequestsPerMinutePerProjectPerModel-FreeTier',
      },
      { metric: 'rpd', limit: 1, model: FLASH, quotaId: 'GenerateRequestsPerDayPerProjectPerModel-FreeTier' },
    ]);
    expect(outcome.scope).toBe('day');
    expect(fake.quotaRefusals).toEqual([
      { project: KEYS[0], model: FLASH, metrics: ['tpm', 'rpm', 'rpd'], window: 0, at: expect.any(Number) },
    ]);
    expect(fake.usageOf(KEYS[0]!, FLASH)).toEqual({ minuteRequests: 1, minuteTokens: 1, dayRequests: 1 });
  });

  it('answers a limit-0 model with a 429 every time, as Gemini writes it, while other projects are served', async () => {
    // Prepare
    fake.setPlan({
      projects: { free: [KEYS[0]!], paid: [KEYS[1]!] },
      models: { [PRO]: { rpm: 5 } },
      projectModels: { free: { [PRO]: { rpm: 0 } } },
    });

    // Act
    const first = await chat(KEYS[0]!, PRO);
    const second = await chat(KEYS[0]!, PRO);
    const other = await chat(KEYS[1]!, PRO);

    // Assess
    for (const refused of [first, second]) {
      expect(refused.status).toBe(429);
      const error = refused.json.error as { message: string; details: Array<Record<string, unknown>> };
      const retryDelay = error.details.find((d) => d['@type'] === 'type.googleapis.com/google.rpc.RetryInfo')
        ?.retryDelay as string;
      expect(retryDelay).toMatch(/^\d{1,2}\.\d{9}s$/);
      expect(error.message).toMatch(
        /^You exceeded your current quota, please check your plan and billing details\. For more information on this error, head to: https:\/\/ai\.google\.dev\/gemini-api\/docs\/rate-limits\./,
      );
      expect(error.message).toContain(
        `\n* Quota exceeded for metric: ${FREE_REQUESTS}, limit: 0, model: ${PRO}\n`,
      );
      expect(error.message.endsWith(`\nPlease retry in ${retryDelay}.`)).toBe(true);
      const outcome = quotaOf(refused);
      expect(outcome.unavailable).toBe(true);
      expect(outcome.retryDelayMs).toBeGreaterThan(0);
      expect(outcome.retryDelayMs).toBeLessThanOrEqual(60_000);
    }
    expect(other.status).toBe(200);
    expect(fake.usageOf('free', PRO).minuteRequests).toBe(0);
    expect(fake.usageOf('paid', PRO).minuteRequests).toBe(1);
    expect(fake.quotaRefusals.map((r) => [r.project, r.metrics])).toEqual([
      ['free', ['rpm']],
      ['free', ['rpm']],
    ]);
  });

  it('counts input tokens per minute window, refuses a prompt larger than the window at once', async () => {
    // Prepare: 240 characters are 60 tokens; a window holds 100.
    fake.setPlan({ models: { [FLASH]: { tpm: 100 } }, windowMs: 500 });
    const prompt = 'x'.repeat(240);
    // Start just after a window opens, so two requests share it.
    await new Promise((r) => setTimeout(r, 500 - (Date.now() % 500) + 5));

    // Act
    const accepted = await chat(KEYS[0]!, FLASH, prompt);
    const over = await chat(KEYS[0]!, FLASH, prompt);
    const usage = fake.usageOf(KEYS[0]!, FLASH);
    await new Promise((r) => setTimeout(r, 500 - (Date.now() % 500) + 5));
    const nextWindow = await chat(KEYS[0]!, FLASH, prompt);
    const oversize = await chat(KEYS[1]!, FLASH, 'x'.repeat(404));

    // Assess
    expect(accepted.status).toBe(200);
    expect((accepted.json.usage as { prompt_tokens: number }).prompt_tokens).toBe(60);
    expect(over.status).toBe(429);
    expect(quotaOf(over).violations.map((v) => [v.metric, v.limit])).toEqual([['tpm', 100]]);
    expect(quotaOf(over).retryDelayMs).toBeLessThanOrEqual(500);
    expect(usage).toEqual({ minuteRequests: 1, minuteTokens: 60, dayRequests: 1 });
    expect(nextWindow.status).toBe(200);
    expect(oversize.status).toBe(429);
    expect(fake.usageOf(KEYS[1]!, FLASH).minuteTokens).toBe(0);
    const [first, second] = fake.quotaRefusals;
    expect(second!.window).toBeGreaterThan(first!.window);
  });

  it('shares one quota between the keys of a project', async () => {
    // Prepare
    fake.setPlan({
      projects: { shared: [KEYS[0]!, KEYS[1]!] },
      models: { [FLASH]: { rpm: 2 } },
      windowMs: NEVER,
    });

    // Act
    const statuses = [];
    for (const key of [KEYS[0]!, KEYS[1]!, KEYS[0]!, KEYS[1]!, KEYS[2]!])
      statuses.push((await chat(key, FLASH)).status);

    // Assess
    expect(statuses).toEqual([200, 200, 429, 429, 200]);
    expect(fake.usageOf('shared', FLASH).minuteRequests).toBe(2);
    expect(fake.usageOf(KEYS[2]!, FLASH).minuteRequests).toBe(1);
    expect(fake.quotaRefusals.map((r) => r.project)).toEqual(['shared', 'shared']);
  });

  it('writes paid-tier ids with quotaValue, and a fractional delay to the end of the minute window', async () => {
    // Prepare
    fake.setPlan({ models: { [PRO]: { rpm: 1 } }, tier: 'paid' });
    const leftOfMinute = 60_000 - (Date.now() % 60_000);
    if (leftOfMinute < 2000) await new Promise((r) => setTimeout(r, leftOfMinute + 5));
    await chat(KEYS[0]!, PRO);

    // Act
    const started = Date.now();
    const refused = await chat(KEYS[0]!, PRO);

    // Assess
    const [failure, , info] = (refused.json.error as { details: Array<Record<string, unknown>> }).details;
    expect(failure).toEqual({
      '@type': 'type.googleapis.com/google.rpc.QuotaFailure',
      violations: [
        {
          quotaMetric: 'generativelanguage.googleapis.com/generate_requests_per_model',
          quotaId: 'GenerateRequestsPerMinutePerProjectPerModel',
          quotaDimensions: { location: 'global', model: PRO },
          quotaValue: '1',
        },
      ],
    });
    const seconds = Number(/^(\d+\.\d{9})s$/.exec(info?.retryDelay as string)?.[1]);
    const windowEnd = (Math.floor(started / 60_000) + 1) * 60_000;
    expect(Math.abs(started + seconds * 1000 - windowEnd)).toBeLessThan(1000);
    expect(quotaOf(refused).violations).toEqual([
      { metric: 'rpm', limit: 1, model: PRO, quotaId: 'GenerateRequestsPerMinutePerProjectPerModel' },
    ]);
  });

  it('reports the tokens it counts: text, images, native system instructions, streamed, times tokenFactor', async () => {
    // Prepare
    fake.setPlan({ models: {}, tokenFactor: 2 });
    const parts = [
      { type: 'text', text: 'x'.repeat(40) },
      { type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA' } },
    ];

    // Act
    const whole = await chat(KEYS[0]!, FLASH, parts as unknown as string);
    const streamed = await chat(KEYS[0]!, FLASH, 'x'.repeat(40), {
      stream: true,
      stream_options: { include_usage: true },
    });
    const nativeAnswer = await native(KEYS[0]!, FLASH, 'generateContent', {
      systemInstruction: { parts: [{ text: 'y'.repeat(8) }] },
      contents: [
        {
          role: 'user',
          parts: [{ text: 'x'.repeat(40) }, { inlineData: { mimeType: 'image/png', data: 'AA' } }],
        },
      ],
    });
    const counted = await native(KEYS[0]!, FLASH, 'countTokens', {
      contents: [{ parts: [{ text: 'x'.repeat(40) }] }],
    });

    // Assess
    expect((whole.json.usage as { prompt_tokens: number }).prompt_tokens).toBe((10 + 258) * 2);
    const events = streamed.text.split('\n\n').filter((e) => e.startsWith('data: {'));
    expect(JSON.parse(events.at(-1)!.slice(6)).usage.prompt_tokens).toBe(20);
    expect((nativeAnswer.json.usageMetadata as { promptTokenCount: number }).promptTokenCount).toBe(
      (12 + 258) * 2,
    );
    expect(counted.json.totalTokens).toBe(20);
    expect(countInputTokens({ input: ['abcd', 'efgh'] })).toBe(2);
    expect(countInputTokens({ prompt: 'abcde' })).toBe(2);
  });

  it('counts no countTokens call, and reset() clears the plan', async () => {
    // Prepare
    fake.setPlan({ models: { [FLASH]: { rpm: 1 } }, windowMs: NEVER });
    await native(KEYS[0]!, FLASH, 'countTokens', { contents: [{ parts: [{ text: 'hi' }] }] });
    expect((await chat(KEYS[0]!, FLASH)).status).toBe(200);
    expect((await chat(KEYS[0]!, FLASH)).status).toBe(429);

    // Act
    fake.reset();

    // Assess
    expect((await chat(KEYS[0]!, FLASH)).status).toBe(200);
    expect(fake.quotaRefusals).toEqual([]);
    expect(fake.usageOf(KEYS[0]!, FLASH)).toEqual({ minuteRequests: 0, minuteTokens: 0, dayRequests: 0 });
  });
});
