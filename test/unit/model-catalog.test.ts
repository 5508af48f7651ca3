import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { UpstreamClient, UpstreamRequest } from '../../lambda/core/http.js';
import { ModelCatalog } from '../../lambda/core/model-catalog.js';

const silent = { debug() {}, info() {}, warn() {}, error() {} };

/** An upstream that answers each listing from `answer(key, pageToken)`; records what it was asked. */
function upstream(answer: (key: string, pageToken: string | null) => { status: number; body: unknown }) {
  const asked: UpstreamRequest[] = [];
  const client: UpstreamClient = {
    async send(request) {
      asked.push(request);
      const { status, body } = answer(
        request.headers['x-goog-api-key']!,
        request.url.searchParams.get('pageToken'),
      );
      return { status, headers: {}, body: Readable.from([Buffer.from(JSON.stringify(body))]) };
    },
  };
  return { client, asked };
}

function catalog(client: UpstreamClient, clock: { now: number }) {
  return new ModelCatalog({
    upstream: client,
    baseUrl: 'http://127.0.0.1:1',
    refreshMs: 3_600_000,
    connectTimeoutMs: 1000,
    firstByteTimeoutMs: 1000,
    logger: silent,
    now: () => clock.now,
  });
}

const list = (...names: string[]) => ({ models: names.map((name) => ({ name })) });

describe('Class: ModelCatalog', () => {
  it('allows every name until the list is read, then only listed models', async () => {
    // Prepare
    const { client, asked } = upstream(() => ({
      status: 200,
      body: list('models/gemini-2.5-flash', 'models/Odd_Name'),
    }));
    const clock = { now: 0 };
    const models = catalog(client, clock);

    // Act
    expect(models.allows('made-up')).toBe(true);
    models.refresh(['k0', 'k1']);
    await models.settled();

    // Assess: one listing call, key in a header, never in the URL
    expect(models.allows('gemini-2.5-flash')).toBe(true);
    expect(models.allows('made-up')).toBe(false);
    expect(models.allows('Odd_Name')).toBe(false);
    expect(asked).toHaveLength(1);
    expect(asked[0]!.url.pathname).toBe('/v1beta/models');
    expect(asked[0]!.url.searchParams.get('pageSize')).toBe('1000');
    expect(asked[0]!.url.searchParams.has('key')).toBe(false);
  });

  it('reads every page, and reads again only when the list is due', async () => {
    // Prepare
    const { client, asked } = upstream((_key, token) =>
      token === null
        ? { status: 200, body: { ...list('models/a'), nextPageToken: 'p2' } }
        : { status: 200, body: list('models/b') },
    );
    const clock = { now: 0 };
    const models = catalog(client, clock);

    // Act
    models.refresh(['k0']);
    models.refresh(['k0']); // one read at a time
    await models.settled();
    clock.now = 3_599_999;
    models.refresh(['k0']);
    await models.settled();

    // Assess
    expect(models.allows('a') && models.allows('b')).toBe(true);
    expect(asked).toHaveLength(2);
    clock.now = 3_600_000;
    models.refresh(['k0']);
    await models.settled();
    expect(asked).toHaveLength(4);
  });

  it('tries other keys when one fails, keeps the last list when a read fails, and fails open without one', async () => {
    // Prepare: k0 is dead, k1 lists
    let broken = false;
    const { client, asked } = upstream((key) =>
      broken || key === 'k0'
        ? { status: 400, body: { error: { code: 400 } } }
        : { status: 200, body: list('models/a') },
    );
    const clock = { now: 0 };
    const models = catalog(client, clock);

    // Act + Assess: the second key's list is taken
    models.refresh(['k0', 'k1']);
    await models.settled();
    expect(asked.map((r) => r.headers['x-goog-api-key'])).toEqual(['k0', 'k1']);
    expect(models.allows('z')).toBe(false);

    // Act + Assess: a failed read later keeps the list
    broken = true;
    clock.now = 3_600_000;
    models.refresh(['k0', 'k1']);
    await models.settled();
    expect(models.allows('a')).toBe(true);
    expect(models.allows('z')).toBe(false);

    // A catalog that never read a list fails open, and tries again a minute later
    const fresh = catalog(client, { now: 0 });
    fresh.refresh(['k0']);
    await fresh.settled();
    expect(fresh.allows('z')).toBe(true);
  });

  it('never reads when the interval is 0', async () => {
    const { client, asked } = upstream(() => ({ status: 200, body: list('models/a') }));
    const models = new ModelCatalog({
      upstream: client,
      baseUrl: 'http://127.0.0.1:1',
      refreshMs: 0,
      connectTimeoutMs: 1000,
      firstByteTimeoutMs: 1000,
      logger: silent,
      now: () => 0,
    });
    models.refresh(['k0']);
    await models.settled();
    expect(asked).toHaveLength(0);
    expect(models.allows('anything')).toBe(true);
  });
});
