import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { FallbackKeyStateStore, type FallbackOptions } from '../../lambda/adapters/state/fallback-store.js';
import { MemoryKeyStateStore } from '../../lambda/adapters/state/memory-store.js';
import { isHardOutage } from '../../lambda/adapters/state/outage-detector.js';
import { stateWaitAllowanceMs } from '../../lambda/core/config/derived.js';
import { parseStateConfig } from '../../lambda/core/config/parse.js';
import type {
  AcquireRequest,
  Acquisition,
  KeyStateStore,
  KeyStateUpdate,
  KeyView,
} from '../../lambda/core/key-state/port.js';
import type { Logger } from '../../lambda/core/logger.js';

/** What the fake shared store does with one call: answer after a while, fail after a while, or hang. */
type Behaviour = 'hang' | { readonly after: number; readonly error?: Error };

function play<T>(behaviour: Behaviour, value: T): Promise<T> {
  if (behaviour === 'hang') return new Promise<T>(() => {});
  return new Promise<T>((resolve, reject) =>
    setTimeout(
      () => (behaviour.error === undefined ? resolve(value) : reject(behaviour.error)),
      behaviour.after,
    ),
  );
}

const SHARED: Acquisition = { kind: 'key', keyId: 'shared-key' };

/** A shared store whose calls do what the test scripts: each call takes the next behaviour, else `usual`. */
class FakeShared implements KeyStateStore {
  readonly acquired: AcquireRequest[] = [];
  /** Models the store has learned limits for (a claim without configured limits). */
  readonly learnedModels = new Set<string>();
  readonly recorded: KeyStateUpdate[] = [];
  readonly script: Behaviour[] = [];
  usual: Behaviour = { after: 5 };

  acquire(request: AcquireRequest): Promise<Acquisition> {
    this.acquired.push(request);
    return play(this.script.shift() ?? this.usual, SHARED);
  }
  record(update: KeyStateUpdate): Promise<void> {
    this.recorded.push(update);
    return play(this.script.shift() ?? this.usual, undefined);
  }
  describe(_group: string, _keyIds: readonly string[]): Promise<KeyView[]> {
    return play(this.script.shift() ?? this.usual, []);
  }
  flush(): Promise<void> {
    return Promise.resolve();
  }
  needsClaim(request: AcquireRequest): boolean {
    return this.learnedModels.has(request.model);
  }
}

const KEYS = [
  { keyId: 'a', budget: 'key:a' },
  { keyId: 'b', budget: 'key:b' },
];

function error(name: string, code?: string): Error {
  const err = new Error(`${name} ${code ?? ''}`);
  err.name = name;
  if (code !== undefined) Object.assign(err, { code });
  return err;
}

describe('FallbackKeyStateStore: slow is not down', () => {
  let shared: FakeShared;
  let local: MemoryKeyStateStore;
  let logs: string[];

  beforeEach(() => {
    vi.useFakeTimers();
    shared = new FakeShared();
    local = new MemoryKeyStateStore();
    logs = [];
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  const logger: Logger = {
    debug: () => {},
    info: (m) => logs.push(m),
    warn: (m) => logs.push(m),
    error: (m) => logs.push(m),
  };

  function store(options: Partial<FallbackOptions> = {}): FallbackKeyStateStore {
    return new FallbackKeyStateStore(shared, local, {
      timeoutMs: 250,
      coldTimeoutMs: 2000,
      outageFailures: 3,
      retryAfterMs: 5000,
      logger,
      now: () => Date.now(),
      ...options,
    });
  }

  const rotation = (over: Partial<AcquireRequest> = {}): AcquireRequest => ({
    group: 'g',
    keys: KEYS,
    model: 'm',
    now: Date.now(),
    exclude: new Set(),
    ...over,
  });
  const claim = (over: Partial<AcquireRequest> = {}) => rotation({ limits: { rpm: 5 }, ...over });

  /** Runs the call, advancing the fake clock until it settles; returns its result and how long it took. */
  async function timed<T>(work: Promise<T>, step = 10, max = 30_000): Promise<{ value: T; ms: number }> {
    const started = Date.now();
    let settled: { value: T } | undefined;
    void work.then((value) => {
      settled = { value };
    });
    while (settled === undefined && Date.now() - started <= max) await vi.advanceTimersByTimeAsync(step);
    if (settled === undefined) throw new Error('did not settle');
    return { value: settled.value, ms: Date.now() - started };
  }

  /** A store that has answered once (its connection warm). */
  async function warm(options: Partial<FallbackOptions> = {}): Promise<FallbackKeyStateStore> {
    const s = store(options);
    expect((await timed(s.acquire(rotation()))).value).toEqual(SHARED);
    return s;
  }

  it('waits for a slow answer to a budget claim rather than claiming locally', async () => {
    // Prepare
    const s = await warm();
    shared.script.push({ after: 600 });

    // Act
    const { value, ms } = await timed(s.acquire(claim()));

    // Assess: the shared answer, after 600 ms; one failure noted, no outage, nothing claimed locally
    expect(value).toEqual(SHARED);
    expect(ms).toBeGreaterThanOrEqual(600);
    expect(s.degraded).toBe(false);
    expect(logs).toEqual(['shared state call failed']);
    expect(await local.acquire(claim({ limits: { rpm: 1 }, keys: [KEYS[0]!] }))).toMatchObject({
      kind: 'key',
      keyId: 'a',
    });
  });

  it('waits for a slow answer to a claim of limits learned from Gemini, as for configured ones', async () => {
    // Prepare: no configured limits, but the shared store holds limits learned for the model
    const s = await warm();
    shared.learnedModels.add(rotation().model);
    shared.script.push({ after: 600 });

    // Act
    const { value, ms } = await timed(s.acquire(rotation()));

    // Assess: the shared answer, not a key from local state (which knows none of the learned limits)
    expect(value).toEqual(SHARED);
    expect(ms).toBeGreaterThanOrEqual(600);
    expect(s.degraded).toBe(false);
  });

  it('serves a rotation from local state for that call only when its answer is late', async () => {
    // Prepare
    const s = await warm();
    shared.script.push('hang');

    // Act
    const late = await timed(s.acquire(rotation()));
    const next = await timed(s.acquire(rotation()));

    // Assess: local after one bound; the next call goes to the shared store again
    expect(late.value).toMatchObject({ kind: 'key', keyId: 'a' });
    expect(late.ms).toBeGreaterThanOrEqual(250);
    expect(late.ms).toBeLessThan(300);
    expect(next.value).toEqual(SHARED);
    expect(s.degraded).toBe(false);
  });

  it('counts calls that fail together as one failure', async () => {
    // Prepare
    const s = await warm();
    shared.usual = 'hang';

    // Act: 20 calls at once, none answered
    const results = await timed(Promise.all(Array.from({ length: 20 }, () => s.acquire(rotation()))));

    // Assess
    expect(results.value.every((r) => r.kind === 'key' && r.keyId !== 'shared-key')).toBe(true);
    expect(s.degraded).toBe(false);
    expect(logs.filter((l) => l === 'shared state call failed')).toHaveLength(1);
  });

  it('makes an outage of outage_failures failed calls in a row; an answer in between resets the count', async () => {
    // Prepare
    const s = await warm();

    // Act 1: fail, fail, answer, fail, fail
    shared.script.push('hang', 'hang', { after: 5 }, 'hang', 'hang');
    for (let i = 0; i < 5; i++) await timed(s.acquire(rotation()));

    // Assess 1
    expect(s.degraded).toBe(false);

    // Act 2: a third failure in a row
    shared.script.push({ after: 20, error: error('ThrottlingException') });
    await timed(s.acquire(rotation()));

    // Assess 2
    expect(s.degraded).toBe(true);
    expect(logs.filter((l) => l.startsWith('shared state unavailable'))).toHaveLength(1);
  });

  it('counts an answer that came after its call was given up on', async () => {
    // Prepare
    const s = await warm();

    // Act: two failures, the second of which answers late; then two more failures
    shared.script.push('hang', { after: 400 }, 'hang', 'hang');
    await timed(s.acquire(rotation()));
    await timed(s.acquire(rotation()));
    await vi.advanceTimersByTimeAsync(200);
    await timed(s.acquire(rotation()));
    await timed(s.acquire(rotation()));

    // Assess: the late answer showed DynamoDB is up: the count restarted
    expect(s.degraded).toBe(false);
  });

  it.each([
    ['connection refused', error('Error', 'ECONNREFUSED')],
    ['no such host', error('Error', 'ENOTFOUND')],
    ['a missing table', error('ResourceNotFoundException')],
    ['access denied', error('AccessDeniedException')],
    ['no credentials', error('CredentialsProviderError')],
    ['every address refused', new AggregateError([error('Error', 'ECONNREFUSED')], 'connect')],
  ])('makes an outage at once of %s', async (_what, err) => {
    const s = await warm();
    shared.script.push({ after: 1, error: err });
    const { value } = await timed(s.acquire(rotation()));
    expect(value).toMatchObject({ kind: 'key', keyId: 'a' });
    expect(s.degraded).toBe(true);
  });

  it.each([
    ['throttling', error('ThrottlingException')],
    ['a reset connection', error('Error', 'ECONNRESET')],
    ['a server error', error('InternalServerError')],
  ])('counts %s as one failure, not an outage', async (_what, err) => {
    const s = await warm();
    shared.script.push({ after: 1, error: err });
    await timed(s.acquire(rotation()));
    expect(s.degraded).toBe(false);
    expect(isHardOutage(err)).toBe(false);
  });

  it("gives a fresh instance's first calls cold_timeout_ms, then timeout_ms", async () => {
    // Prepare: a fresh store; DynamoDB answers in 1.5 s
    const s = store();
    shared.usual = { after: 1500 };

    // Act
    const cold = await timed(s.acquire(rotation()));
    const warmCall = await timed(s.acquire(rotation()));

    // Assess: the first call waited for its answer; once warm, 1.5 s is too slow for a rotation
    expect(cold.value).toEqual(SHARED);
    expect(cold.ms).toBeGreaterThanOrEqual(1500);
    expect(warmCall.value).toMatchObject({ kind: 'key', keyId: 'a' });
    expect(warmCall.ms).toBeLessThan(300);
    expect(s.degraded).toBe(false);
  });

  it('gives later calls timeout_ms once a cold call went unanswered for cold_timeout_ms', async () => {
    const s = store();
    shared.usual = 'hang';
    expect((await timed(s.acquire(rotation()))).ms).toBeGreaterThanOrEqual(2000);
    expect((await timed(s.acquire(rotation()))).ms).toBeLessThan(300);
  });

  it('refuses a claim DynamoDB does not answer within the request allowance, without an outage', async () => {
    // Prepare
    const s = await warm({ onOutage: 'serve_local' });
    shared.usual = 'hang';

    // Act: a request with 1 s of its allowance left
    const { value, ms } = await timed(s.acquire(claim({ waitBudgetMs: 1000 })));

    // Assess: refused (not claimed locally) when the allowance ran out; one failure, no outage
    expect(value).toEqual({ kind: 'state_unavailable', retryAt: Date.now() + 1000 });
    expect(ms).toBeGreaterThanOrEqual(1000);
    expect(ms).toBeLessThan(1050);
    expect(s.degraded).toBe(false);
  });

  it('bounds a claim by the whole allowance: cold_timeout_ms + (outage_failures - 1) × timeout_ms', async () => {
    const s = await warm();
    shared.usual = 'hang';
    const { value, ms } = await timed(s.acquire(claim()));
    expect(value.kind).toBe('state_unavailable');
    expect(ms).toBeGreaterThanOrEqual(2500);
    expect(ms).toBeLessThan(2550);
  });

  it('sends a claim again after an error answer, within the allowance', async () => {
    const s = await warm();
    shared.script.push({ after: 10, error: error('ThrottlingException') }, { after: 10 });
    const { value } = await timed(s.acquire(claim()));
    expect(value).toEqual(SHARED);
    expect(shared.acquired).toHaveLength(3);
  });

  it('stops a waiting claim as soon as the instance counts DynamoDB as down', async () => {
    // Prepare
    const s = await warm({ onOutage: 'refuse' });
    shared.script.push('hang', { after: 100, error: error('Error', 'ECONNREFUSED') });

    // Act: a claim waits; meanwhile another call is refused a connection
    const waiting = timed(s.acquire(claim()));
    await timed(s.acquire(rotation()));
    const { value, ms } = await waiting;

    // Assess
    expect(value).toEqual({ kind: 'state_unavailable', retryAt: expect.any(Number) });
    expect(ms).toBeLessThan(150);
  });

  it.each([
    ['refuse', 'state_unavailable'],
    ['serve_local', 'key'],
  ] as const)(
    '%s: a claim DynamoDB rejects as malformed goes to the outage policy, with no outage',
    async (policy, kind) => {
      const s = await warm({ onOutage: policy });
      shared.script.push({ after: 5, error: error('ValidationException') });
      expect((await timed(s.acquire(claim()))).value.kind).toBe(kind);
      shared.script.push({ after: 5, error: error('ValidationException') });
      expect((await timed(s.acquire(rotation()))).value).toMatchObject({ kind: 'key' });
      expect(s.degraded).toBe(false);
      expect(logs.filter((l) => l === 'shared state call failed')).toEqual([]);
    },
  );

  it('keeps a write that went unanswered for replay, without an outage', async () => {
    // Prepare
    const s = await warm();
    const invalid: KeyStateUpdate = { kind: 'invalid', group: 'g', keyId: 'b', reason: 'API_KEY_INVALID' };
    shared.script.push('hang');

    // Act: the write goes unanswered; the next answered acquisition replays it
    const { ms } = await timed(s.record(invalid));
    await timed(s.acquire(rotation()));
    await timed(s.flush());

    // Assess
    expect(ms).toBeLessThan(300);
    expect(s.degraded).toBe(false);
    expect(shared.recorded).toEqual([invalid, invalid]);
  });

  it('does not keep for replay a write DynamoDB rejects as invalid: it would never be accepted', async () => {
    // Prepare
    const s = await warm();
    const cooldown: KeyStateUpdate = {
      kind: 'cooldown',
      group: 'g',
      keyId: 'b',
      model: 'm',
      cooldown: { until: Date.now() + 60_000, cause: 'rpm' },
    };
    shared.script.push({ after: 1, error: error('ValidationException') });

    // Act: the write is rejected; the next answered acquisition would replay what was kept
    await timed(s.record(cooldown));
    await timed(s.acquire(rotation()));
    await timed(s.flush());

    // Assess: sent once, not replayed; the store is not down
    expect(shared.recorded).toEqual([cooldown]);
    expect(s.degraded).toBe(false);
  });

  describe('while DynamoDB is down', () => {
    async function down(onOutage: 'serve_local' | 'refuse'): Promise<FallbackKeyStateStore> {
      const s = await warm({ onOutage });
      shared.script.push({ after: 1, error: error('Error', 'ECONNREFUSED') });
      await timed(s.acquire(rotation()));
      expect(s.degraded).toBe(true);
      return s;
    }

    it('refuse: claims (limits, or a client rpm) get state_unavailable until DynamoDB is tried again', async () => {
      const s = await down('refuse');
      const downAt = Date.now();
      const calls = shared.acquired.length;
      const refused = await s.acquire(claim());
      expect(refused.kind === 'state_unavailable' && refused.retryAt - downAt).toBeGreaterThan(4900);
      const retryAt = refused.kind === 'state_unavailable' ? refused.retryAt : 0;
      expect(retryAt - downAt).toBeLessThanOrEqual(5000);
      expect(await s.acquire(claim())).toEqual({ kind: 'state_unavailable', retryAt });
      expect(await s.acquire(rotation({ client: { clientId: 'c', rpm: 10 } }))).toEqual({
        kind: 'state_unavailable',
        retryAt,
      });
      // A request that needs no claim is served from local state
      expect(await s.acquire(rotation())).toMatchObject({
        kind: 'key',
        keyId: expect.stringMatching(/^[ab]$/),
      });
      expect(shared.acquired).toHaveLength(calls);
    });

    it('serve_local: claims are counted in local budgets (per instance)', async () => {
      const s = await down('serve_local');
      const grants = [];
      for (let i = 0; i < 3; i++) grants.push(await s.acquire(claim({ limits: { rpm: 1 } })));
      expect(grants.map((g) => g.kind)).toEqual(['key', 'key', 'unavailable']);
    });

    it('tries DynamoDB again after retry_after_ms and replays what it learnt meanwhile', async () => {
      // Prepare
      const s = await down('serve_local');
      const cooldown: KeyStateUpdate = {
        kind: 'cooldown',
        group: 'g',
        keyId: 'a',
        model: 'm',
        cooldown: { until: Date.now() + 60_000, cause: 'rpm' },
      };
      await s.record(cooldown);
      expect(shared.recorded).toEqual([]);

      // Act
      await vi.advanceTimersByTimeAsync(5000);
      const { value } = await timed(s.acquire(rotation()));
      await timed(s.flush());

      // Assess
      expect(value).toEqual(SHARED);
      expect(shared.recorded).toEqual([cooldown]);
      expect(logs).toContain('shared state back; replaying local updates');
    });

    it('never replays a token reconciliation, nor sends one for a claim made in local budgets', async () => {
      // Prepare: down; a claim counted locally, and its refund (Gemini answered 429)
      const s = await down('serve_local');
      const granted = await s.acquire(claim({ limits: { tpm: 1000 }, tokens: 300 }));
      if (granted.kind !== 'key' || granted.claim === undefined) throw new Error('expected a local claim');
      const refund: KeyStateUpdate = {
        kind: 'tokens',
        group: 'g',
        keyId: granted.keyId,
        model: 'm',
        claim: granted.claim,
        delta: -300,
      };
      await s.record(refund);
      // And one for a claim DynamoDB counted, made while it was down: dropped, not kept
      await s.record({ ...refund, claim: { ...granted.claim, local: false } });

      // Act: DynamoDB is back; what was kept is replayed
      await vi.advanceTimersByTimeAsync(5000);
      await timed(s.acquire(rotation()));
      await timed(s.flush());

      // Assess: the claim was marked local, and no reconciliation reached the shared store
      expect(granted.claim.local).toBe(true);
      expect(shared.recorded).toEqual([]);
    });
  });

  it('with reported answers, only heard() shows DynamoDB is up (a call answered from a cache does not)', async () => {
    // Prepare: calls that resolve prove nothing; the owner reports DynamoDB's own answers
    const s = store({ answers: 'reported' });
    s.heard();

    // Act 1: fail, fail, a call that resolves without DynamoDB, fail
    shared.script.push('hang', 'hang', { after: 1 }, 'hang');
    for (let i = 0; i < 3; i++) await timed(s.acquire(rotation()));
    expect(s.degraded).toBe(false);
    await timed(s.acquire(rotation()));

    // Assess 1: three failures in a row
    expect(s.degraded).toBe(true);

    // Act 2: the same with an answer heard in between (a fresh instance)
    const t = store({ answers: 'reported' });
    t.heard();
    shared.script.push('hang', 'hang');
    for (let i = 0; i < 2; i++) await timed(t.acquire(rotation()));
    t.heard();
    shared.script.push('hang');
    await timed(t.acquire(rotation()));

    // Assess 2
    expect(t.degraded).toBe(false);
  });
});

describe('state settings', () => {
  it('defaults: timeout 250 ms, cold 2 s, 3 failures, serve_local; a request waits 2.5 s at most', () => {
    const state = parseStateConfig({});
    expect(state).toMatchObject({
      timeout_ms: 250,
      cold_timeout_ms: 2000,
      outage_failures: 3,
      on_outage: 'serve_local',
      retry_after_ms: 5000,
    });
    expect(stateWaitAllowanceMs(state)).toBe(2500);
    expect(stateWaitAllowanceMs({ timeout_ms: 100, cold_timeout_ms: 50, outage_failures: 1 })).toBe(100);
  });

  it('rejects an unknown outage policy and a failure count out of range', () => {
    expect(() => parseStateConfig({ on_outage: 'ignore' })).toThrow(/on_outage/);
    expect(() => parseStateConfig({ outage_failures: 0 })).toThrow(/outage_failures/);
    expect(parseStateConfig({ on_outage: 'refuse' }).on_outage).toBe('refuse');
  });
});
