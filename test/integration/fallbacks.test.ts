import OpenAI from 'openai';
import { afterEach, describe, expect, it } from 'vitest';
import type { ScriptedResponse } from '../support/fake-gemini.js';
import { type Harness, KEYS, leaks, startHarness, TOKEN } from '../support/harness.js';

const PRO = 'gemini-2.5-pro';
const FLASH = 'gemini-2.5-flash';
/** Keys 0 and 1 serve pro, keys 2 and 3 flash: which key answered tells which model's group it was. */
const PRO_KEYS = [KEYS[0]!, KEYS[1]!];
const FLASH_KEYS = [KEYS[2]!, KEYS[3]!];

/** A Gemini 429 naming its delay (RetryInfo), as for a spent per-minute quota. */
function quota429(retryDelay: string): ScriptedResponse {
  return {
    status: 429,
    body: {
      error: {
        code: 429,
        status: 'RESOURCE_EXHAUSTED',
        message: `You exceeded your current quota. Please retry in ${retryDelay}.`,
        details: [{ '@type': 'type.googleapis.com/google.rpc.RetryInfo', retryDelay }],
      },
    },
  };
}

interface RequestLine {
  message: string;
  status: number;
  model?: string;
  fallbackFrom?: string;
  attempts?: number;
}

const requestLines = (h: Harness) =>
  h.logs.map((l) => JSON.parse(l) as RequestLine).filter((l) => l.message === 'request');

const nativeCall = (h: Harness, model: string, method: string, query = '', headers = {}) =>
  fetch(`${h.url}/v1beta/models/${model}:${method}${query}`, {
    method: 'POST',
    headers: { 'x-goog-api-key': TOKEN, 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ contents: [{ parts: [{ text: 'hi' }] }] }),
  });

describe('Integration: model fallbacks', () => {
  let h: Harness | undefined;

  async function start(fallbacks: Record<string, string[]>, upstream: Record<string, unknown> = {}) {
    h = await startHarness({
      config: { fallbacks, upstream },
      groups: (fake) => [
        { name: 'pro', api_keys: PRO_KEYS, target_url: fake.openAiBase, models: [PRO] },
        { name: 'flash', api_keys: FLASH_KEYS, target_url: fake.openAiBase, models: [FLASH] },
      ],
    });
    return h;
  }

  /** Every pro key answers its next call 429 (cooling it `retryDelay`). */
  const coolPro = (harness: Harness, retryDelay = '30s') => {
    for (const key of PRO_KEYS) harness.fake.respondNext(key, quota429(retryDelay));
  };

  afterEach(async () => {
    if (h === undefined) return;
    expect(leaks(h)).toEqual([]);
    await h.close();
    h = undefined;
  });

  it('serves a chat with the next model when every key of its own is cooling', async () => {
    // Prepare
    const harness = await start({ [PRO]: [FLASH] });
    coolPro(harness);

    // Act
    const { data, response } = await harness.openai.chat.completions
      .create({ model: PRO, messages: [{ role: 'user', content: 'hi' }] }, { headers: {} })
      .withResponse();
    // Pro's keys are still cooling: the next request goes to flash without a call for pro.
    const again = await harness.openai.chat.completions
      .create({ model: PRO, messages: [{ role: 'user', content: 'again' }] })
      .withResponse();

    // Assess
    expect(data.choices[0]?.message.content).toBeTruthy();
    expect(response.headers.get('x-gemini-model')).toBe(FLASH);
    expect(response.headers.get('x-upstream-attempts')).toBe('3');
    expect(again.response.headers.get('x-gemini-model')).toBe(FLASH);
    expect(again.response.headers.get('x-upstream-attempts')).toBe('1');
    const calls = harness.fake.calls.map((c) => [c.model, c.status]);
    expect(calls).toEqual([
      [PRO, 429],
      [PRO, 429],
      [FLASH, 200],
      [FLASH, 200],
    ]);
    expect(FLASH_KEYS).toContain(harness.fake.calls[2]?.key);
    // One request line per client request, naming the model that answered and the client's.
    expect(requestLines(harness)).toEqual([
      expect.objectContaining({ status: 200, model: FLASH, fallbackFrom: PRO, attempts: 3 }),
      expect.objectContaining({ status: 200, model: FLASH, fallbackFrom: PRO, attempts: 1 }),
    ]);
    expect(harness.metrics[0]).toMatchObject({
      status: 200,
      fallback: true,
      attempts: 3,
      upstreamErrors: { quota: 2 },
      keyCooldowns: 2,
      group: 'flash',
      refusal: undefined,
    });
  });

  it('serves a streamed chat with the next model, through the openai client', async () => {
    // Prepare
    const harness = await start({ [PRO]: [FLASH] });
    coolPro(harness);

    // Act
    const { data: stream, response } = await harness.openai.chat.completions
      .create({ model: PRO, messages: [{ role: 'user', content: 'hi' }], stream: true })
      .withResponse();
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';

    // Assess
    expect(response.headers.get('x-gemini-model')).toBe(FLASH);
    expect(text).toBe('Hello from fake Gemini #4');
    const served = harness.fake.calls.at(-1)!;
    expect([served.model, served.stream, served.status]).toEqual([FLASH, true, 200]);
    expect(requestLines(harness)).toEqual([
      expect.objectContaining({ status: 200, model: FLASH, fallbackFrom: PRO, attempts: 3 }),
    ]);
    expect(harness.metrics).toHaveLength(1);
    expect(harness.metrics[0]).toMatchObject({ fallback: true, outputTokens: expect.any(Number) });
  });

  it('rewrites the path of native generateContent and streamGenerateContent', async () => {
    // Prepare
    const harness = await start({ [PRO]: [FLASH] });
    coolPro(harness);

    // Act
    const whole = await nativeCall(harness, PRO, 'generateContent');
    const streamed = await nativeCall(harness, PRO, 'streamGenerateContent', '?alt=sse');
    const events = await streamed.text();

    // Assess
    expect(whole.status).toBe(200);
    expect(whole.headers.get('x-gemini-model')).toBe(FLASH);
    expect(((await whole.json()) as { modelVersion: string }).modelVersion).toBe(FLASH);
    expect(streamed.status).toBe(200);
    expect(streamed.headers.get('x-gemini-model')).toBe(FLASH);
    expect(events.match(/^data: /gm)).toHaveLength(5);
    const served = harness.fake.calls.filter((c) => c.status === 200);
    expect(served.map((c) => [c.path, c.query])).toEqual([
      [`/v1beta/models/${FLASH}:generateContent`, ''],
      [`/v1beta/models/${FLASH}:streamGenerateContent`, 'alt=sse'],
    ]);
  });

  it('names the model on an answer that needed no fallback', async () => {
    // Prepare
    const harness = await start({ [PRO]: [FLASH] });

    // Act
    const chat = await harness.openai.chat.completions
      .create({ model: PRO, messages: [{ role: 'user', content: 'hi' }] })
      .withResponse();
    const native = await nativeCall(harness, FLASH, 'generateContent');

    // Assess
    expect(chat.response.headers.get('x-gemini-model')).toBe(PRO);
    expect(native.headers.get('x-gemini-model')).toBe(FLASH);
    expect(harness.metrics.map((m) => m.fallback)).toEqual([false, false]);
    expect(requestLines(harness).map((l) => [l.model, l.fallbackFrom])).toEqual([
      [PRO, undefined],
      [FLASH, undefined],
    ]);
  });

  it('answers the refusal when the client opts out, and never forwards the header', async () => {
    // Prepare
    const harness = await start({ [PRO]: [FLASH] });
    coolPro(harness);

    // Act
    const refusals: Array<[number, string | null, string | null]> = [];
    for (const value of ['off', 'none', 'false', '0', ' OFF ']) {
      const err = await harness.openai.chat.completions
        .create(
          { model: PRO, messages: [{ role: 'user', content: 'hi' }] },
          { headers: { 'x-gemini-fallback': value } },
        )
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(OpenAI.RateLimitError);
      const { status, headers } = err as InstanceType<typeof OpenAI.RateLimitError>;
      refusals.push([status, headers.get('x-gemini-model'), headers.get('retry-after')]);
    }
    const served = await harness.openai.chat.completions
      .create(
        { model: PRO, messages: [{ role: 'user', content: 'hi' }] },
        { headers: { 'x-gemini-fallback': 'on' } },
      )
      .withResponse();

    // Assess
    expect(refusals.map(([status, model]) => [status, model])).toEqual(Array(5).fill([429, PRO]));
    expect(Number(refusals[0]![2])).toBeGreaterThan(25);
    expect(served.response.headers.get('x-gemini-model')).toBe(FLASH);
    expect(harness.fake.calls.map((c) => c.model)).toEqual([PRO, PRO, FLASH]);
    expect(harness.fake.calls.every((c) => !('x-gemini-fallback' in c.headers))).toBe(true);
  });

  it('passes a client error from Gemini through, with no fallback', async () => {
    // Prepare
    const harness = await start({ [PRO]: [FLASH] });
    const invalid = { code: 400, status: 'INVALID_ARGUMENT', message: 'Invalid value at messages[0].' };
    for (const key of PRO_KEYS) harness.fake.respondNext(key, { status: 400, body: { error: invalid } });

    // Act
    const res = await nativeCall(harness, PRO, 'generateContent');

    // Assess
    expect(res.status).toBe(400);
    expect(res.headers.get('x-gemini-model')).toBe(PRO);
    expect(harness.fake.calls.map((c) => c.model)).toEqual([PRO]);
    expect(harness.metrics[0]).toMatchObject({ status: 400, fallback: false, refusal: undefined });
  });

  it('moves only generations: embeddings and token counts get their own model’s refusal', async () => {
    // Prepare
    const harness = await start({ [PRO]: [FLASH] });
    coolPro(harness);
    await nativeCall(harness, PRO, 'generateContent');
    harness.fake.reset();

    // Act
    const embedding = await nativeCall(harness, PRO, 'embedContent');
    const count = await nativeCall(harness, PRO, 'countTokens');

    // Assess
    expect([embedding.status, embedding.headers.get('x-gemini-model')]).toEqual([429, PRO]);
    expect([count.status, count.headers.get('x-gemini-model')]).toEqual([429, PRO]);
    expect(harness.fake.calls).toEqual([]);
  });

  it('falls back when no key of the model is usable at all', async () => {
    // Prepare
    const harness = await start({ [PRO]: [FLASH] });
    for (const key of PRO_KEYS) harness.fake.killKey(key, 'API_KEY_INVALID');

    // Act
    const res = await nativeCall(harness, PRO, 'generateContent');

    // Assess
    expect(res.status).toBe(200);
    expect(res.headers.get('x-gemini-model')).toBe(FLASH);
    expect(harness.fake.calls.map((c) => [c.model, c.status])).toEqual([
      [PRO, 400],
      [PRO, 400],
      [FLASH, 200],
    ]);
  });

  it('answers the refusal with the soonest Retry-After when every model of the chain is refused', async () => {
    // Prepare: pro cools for 30 s, flash for 5 s
    const harness = await start({ [PRO]: [FLASH] });
    coolPro(harness, '30s');
    for (const key of FLASH_KEYS) harness.fake.respondNext(key, quota429('5s'));

    // Act
    const first = await nativeCall(harness, PRO, 'generateContent');
    // Pro's own refusal, alone, says 30 s; with the chain a retry in 5 s is served.
    const alone = await nativeCall(harness, PRO, 'generateContent', '', { 'x-gemini-fallback': 'off' });

    // Assess
    expect(first.status).toBe(429);
    expect(first.headers.get('x-gemini-model')).toBe(FLASH);
    expect(Number(first.headers.get('retry-after'))).toBeLessThanOrEqual(5);
    expect(first.headers.get('x-upstream-attempts')).toBe('4');
    expect(((await first.json()) as { error: { code: string } }).error.code).toBe('keys_exhausted');
    expect(alone.headers.get('x-gemini-model')).toBe(PRO);
    expect(Number(alone.headers.get('retry-after'))).toBeGreaterThan(25);
    expect(requestLines(harness)[0]).toMatchObject({
      status: 429,
      model: FLASH,
      fallbackFrom: PRO,
      attempts: 4,
    });
    expect(harness.metrics[0]).toMatchObject({
      refusal: 'keys_exhausted',
      fallback: false,
      attempts: 4,
      upstreamErrors: { quota: 4 },
    });
  });

  it('answers the client’s own model’s refusal when it is as soon as any', async () => {
    // Prepare: pro cools for 5 s, flash for 30 s
    const harness = await start({ [PRO]: [FLASH] });
    coolPro(harness, '5s');
    for (const key of FLASH_KEYS) harness.fake.respondNext(key, quota429('30s'));

    // Act
    const res = await harness.openai.chat.completions
      .create({ model: PRO, messages: [{ role: 'user', content: 'hi' }] })
      .catch((e: unknown) => e);

    // Assess
    expect(res).toBeInstanceOf(OpenAI.RateLimitError);
    const { headers } = res as InstanceType<typeof OpenAI.RateLimitError>;
    expect(headers.get('x-gemini-model')).toBe(PRO);
    expect(Number(headers.get('retry-after'))).toBeLessThanOrEqual(5);
    expect(requestLines(harness)[0]).toMatchObject({ status: 429, model: PRO, attempts: 4 });
    expect(requestLines(harness)[0]).not.toHaveProperty('fallbackFrom');
  });

  it('skips a fallback model Gemini does not list', async () => {
    // Prepare: the model list is read (fake Gemini lists flash and pro)
    const harness = await start({ [PRO]: ['gemini-9-unlisted', FLASH] }, { model_list_ms: 3_600_000 });
    expect((await nativeCall(harness, FLASH, 'generateContent')).status).toBe(200);
    for (
      let i = 0;
      i < 100 && !harness.fake.calls.some((c) => c.path === '/v1beta/models' && c.status === 200);
      i++
    )
      await new Promise((r) => setTimeout(r, 10));
    harness.fake.reset();
    coolPro(harness);

    // Act
    const res = await nativeCall(harness, PRO, 'generateContent');

    // Assess
    expect(res.status).toBe(200);
    expect(res.headers.get('x-gemini-model')).toBe(FLASH);
    expect(harness.fake.calls.map((c) => c.model)).toEqual([PRO, PRO, FLASH]);
  });
});
