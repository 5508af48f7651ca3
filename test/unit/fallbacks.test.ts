import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../lambda/core/config/parse.js';
import { RequestDeadline } from '../../lambda/core/deadline.js';
import {
  Attempts,
  type Ending,
  type ForwarderDeps,
  type ForwardJob,
} from '../../lambda/core/forwarding/attempts.js';
import {
  fallbackChains,
  fallbacksOff,
  type ModelTurn,
  serveWithFallbacks,
} from '../../lambda/core/forwarding/fallbacks.js';
import type { ProxyRequest } from '../../lambda/core/http.js';
import type { RequestMetrics } from '../../lambda/core/metrics.js';
import { openAiError } from '../../lambda/core/openai-errors.js';
import { keysExhausted } from '../../lambda/core/refusals.js';

const config = parseConfig({ client_tokens: ['t'], groups: [{ name: 'g', api_keys: ['k'] }] });
const deadlines: RequestDeadline[] = [];

function firstAttempts(controller = new AbortController()): Attempts {
  const deadline = new RequestDeadline(controller.signal, 60_000);
  deadlines.push(deadline);
  const deps = { now: Date.now } as unknown as Pick<ForwarderDeps, 'store' | 'health' | 'now'>;
  return new Attempts(deadline, deps, config.policy, 1000);
}

function job(model = 'gemini-2.5-pro'): ForwardJob {
  const request = {
    method: 'POST',
    path: '/v1/chat/completions',
    query: '',
    headers: {},
  } as unknown as ProxyRequest;
  return {
    request,
    body: new TextEncoder().encode(JSON.stringify({ model, messages: [] })),
    target: { kind: 'openai', rest: 'chat/completions', query: '' },
    generation: 'whole',
    tokens: 0,
    model,
    groups: [],
    started: 0,
    client: undefined,
  };
}

const refused = (refusal: RequestMetrics['refusal'], status = 429): Ending => ({
  response: openAiError(status, 'refused', 'server_error', refusal ?? 'x'),
  refusal,
});
const ok: Ending = { response: { status: 200, headers: {}, body: '{}' } };
const fallbacks = [
  { model: 'gemini-2.5-flash', groups: [] },
  { model: 'gemini-2.5-flash-lite', groups: [] },
];

/** Serves each model with the next of `endings`, counting one Gemini call per turn. */
function scripted(endings: Ending[]) {
  const served: string[] = [];
  const serve = async (j: ForwardJob, attempts: Attempts) => {
    served.push(j.model);
    attempts.count++;
    return endings.shift() ?? ok;
  };
  return { served, serve };
}

describe('Function: serveWithFallbacks', () => {
  afterEach(() => {
    for (const d of deadlines.splice(0)) d.dispose();
  });

  it.each(['keys_exhausted', 'no_usable_keys', 'model_unavailable', 'over_token_budget'] as const)(
    'moves to the next model on %s',
    async (refusal) => {
      // Prepare
      const { served, serve } = scripted([refused(refusal)]);

      // Act
      const turn = await serveWithFallbacks(job(), firstAttempts(), fallbacks, serve);

      // Assess
      expect(served).toEqual(['gemini-2.5-pro', 'gemini-2.5-flash']);
      expect(turn.job.model).toBe('gemini-2.5-flash');
      expect(turn.job.fallbackFrom).toBe('gemini-2.5-pro');
      expect(turn.job.earlier?.count).toBe(1);
      expect(new TextDecoder().decode(turn.job.body)).toBe('{"model":"gemini-2.5-flash","messages":[]}');
    },
  );

  it.each([
    ['circuit_open', 503],
    ['state_unavailable', 503],
    ['client_rate_limited', 429],
    [undefined, 400],
    [undefined, 500],
  ] as const)('answers %s (%d) as it is', async (refusal, status) => {
    const { served, serve } = scripted([refused(refusal, status)]);
    const turn = await serveWithFallbacks(job(), firstAttempts(), fallbacks, serve);
    expect(served).toEqual(['gemini-2.5-pro']);
    expect(turn.ending.response.status).toBe(status);
    expect(turn.job.fallbackFrom).toBeUndefined();
  });

  it('stops once the request is cancelled', async () => {
    const controller = new AbortController();
    const { served, serve } = scripted([refused('keys_exhausted')]);
    const attempts = firstAttempts(controller);
    const turn = serveWithFallbacks(job(), attempts, fallbacks, async (j, a) => {
      controller.abort();
      return serve(j, a);
    });
    expect((await turn).job.model).toBe('gemini-2.5-pro');
    expect(served).toEqual(['gemini-2.5-pro']);
  });

  it('follows the chain in order, gives each model its own attempts, and counts the client once', async () => {
    // Prepare
    const attempts = firstAttempts();
    attempts.clientCounted = true;
    const seen: Attempts[] = [];
    const { served, serve } = scripted([refused('keys_exhausted'), refused('no_usable_keys', 503)]);

    // Act
    const turn: ModelTurn = await serveWithFallbacks(job(), attempts, fallbacks, async (j, a) => {
      seen.push(a);
      return serve(j, a);
    });

    // Assess
    expect(served).toEqual(['gemini-2.5-pro', 'gemini-2.5-flash', 'gemini-2.5-flash-lite']);
    expect(turn.job.earlier?.count).toBe(2);
    expect(turn.attempts.count).toBe(1);
    expect(new Set(seen).size).toBe(3);
    expect(seen.every((a) => a.clientCounted && a.signal === attempts.signal)).toBe(true);
  });

  it('answers the refusal with the soonest Retry-After, the earlier model on a tie', async () => {
    const chain = async (endings: Ending[]) => {
      const turn = await serveWithFallbacks(job(), firstAttempts(), fallbacks, scripted(endings).serve);
      return [turn.job.model, turn.job.earlier?.count, turn.ending.response.headers['retry-after']];
    };
    const none = refused('no_usable_keys', 503);
    expect(await chain([none, keysExhausted(9_000), keysExhausted(4_000)].map(asEnding))).toEqual([
      'gemini-2.5-flash-lite',
      2,
      '4',
    ]);
    expect(await chain([keysExhausted(4_000), keysExhausted(4_000), none].map(asEnding))).toEqual([
      'gemini-2.5-pro',
      2,
      '4',
    ]);
    expect(await chain([none, none, none])).toEqual(['gemini-2.5-pro', 2, undefined]);
  });
});

function asEnding(e: Ending | Ending['response']): Ending {
  return 'response' in e ? e : { response: e, refusal: 'keys_exhausted' };
}

describe('Function: fallbacksOff', () => {
  it('reads the opt-out values, any case and spacing', () => {
    for (const value of ['off', 'none', 'false', '0', ' Off ']) {
      expect(fallbacksOff({ 'x-gemini-fallback': value })).toBe(true);
    }
    for (const value of [undefined, 'on', '', 'true', '1']) {
      expect(fallbacksOff({ 'x-gemini-fallback': value })).toBe(false);
    }
  });
});

describe('Function: fallbackChains', () => {
  it('keys chains by bare model names', () => {
    const chains = fallbackChains({
      'models/gemini-2.5-pro': ['models/gemini-2.5-flash', 'gemini-2.5-flash-lite'],
    });
    expect([...chains]).toEqual([['gemini-2.5-pro', ['gemini-2.5-flash', 'gemini-2.5-flash-lite']]]);
  });
});
