import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type Harness, KEYS, leaks, MODEL, startHarness, TOKEN } from '../support/harness.js';

describe('E2E: the openai npm client against the local proxy', () => {
  let h: Harness;

  beforeAll(async () => {
    h = await startHarness();
  });
  beforeEach(() => {
    h.fake.reset();
    h.fake.options.streamChunkDelayMs = 0;
  });
  afterAll(async () => {
    expect(leaks(h)).toEqual([]);
    await h.close();
  });

  it('completes a chat', async () => {
    // Act
    const completion = await h.openai.chat.completions.create({
      model: MODEL,
      messages: [{ role: 'user', content: 'hello' }],
    });

    // Assess
    expect(completion.object).toBe('chat.completion');
    expect(completion.choices[0]?.message.content).toBeTruthy();
    const [call] = h.fake.calls;
    expect(call?.path).toBe('/v1beta/openai/chat/completions');
    expect(KEYS).toContain(call?.key);
    expect(call?.keyInQuery).toBe(false);
  });

  it('streams a chat chunk by chunk as Gemini sends it', async () => {
    // Prepare
    h.fake.options.streamChunkDelayMs = 150;
    const started = Date.now();

    // Act
    const stream = await h.openai.chat.completions.create({
      model: MODEL,
      messages: [{ role: 'user', content: 'hello' }],
      stream: true,
    });
    const arrivals: number[] = [];
    let text = '';
    for await (const chunk of stream) {
      arrivals.push(Date.now() - started);
      text += chunk.choices[0]?.delta.content ?? '';
    }

    // Assess: 5 chunks 150 ms apart; buffering would deliver them all at the end.
    expect(arrivals.length).toBeGreaterThanOrEqual(5);
    // The fake's last chunk carries usage: the request's metrics report it.
    expect(h.metrics.at(-1)).toMatchObject({
      inputTokens: expect.any(Number),
      outputTokens: expect.any(Number),
    });
    expect(text.length).toBeGreaterThan(0);
    const first = arrivals[0]!;
    const last = arrivals[arrivals.length - 1]!;
    expect(last - first).toBeGreaterThanOrEqual(450);
    expect(first).toBeLessThan(last - 400);
    expect(h.fake.calls[0]?.stream).toBe(true);
  });

  it('lists models', async () => {
    const page = await h.openai.models.list();
    expect(page.data.map((m) => m.id)).toContain('models/gemini-2.5-flash');
    expect(h.fake.calls[0]?.method).toBe('GET');
  });

  it('creates embeddings', async () => {
    const result = await h.openai.embeddings.create({ model: 'gemini-embedding-001', input: ['a', 'b'] });
    expect(result.data).toHaveLength(2);
    expect(result.data[0]?.embedding.length).toBeGreaterThan(0);
    expect(h.fake.calls[0]?.model).toBe('gemini-embedding-001');
  });

  it('turns a wrong token into the SDK’s AuthenticationError', async () => {
    const { default: OpenAI } = await import('openai');
    const bad = new OpenAI({ apiKey: `${TOKEN}-wrong`, baseURL: `${h.url}/v1`, maxRetries: 0 });
    await expect(bad.models.list()).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
    expect(h.fake.calls).toHaveLength(0);
  });

  it('surfaces every key cooling as the SDK’s RateLimitError', async () => {
    const { default: OpenAI } = await import('openai');
    for (const key of KEYS) h.fake.setQuota(key, { limit: 0, windowMs: 60_000 });
    const err = await h.openai.chat.completions
      .create({ model: MODEL, messages: [{ role: 'user', content: 'x' }] })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.RateLimitError);
    expect((err as InstanceType<typeof OpenAI.RateLimitError>).headers.get('retry-after')).toMatch(/^\d+$/);
  });
});
