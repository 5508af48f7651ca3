import { renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it, onTestFinished } from 'vitest';
import { stringify } from 'yaml';
import { configFromText, type Env, loadConfigSource } from '../../lambda/adapters/config-loader.js';
import { JsonLogger } from '../../lambda/adapters/logger.js';
import { RELOAD_BOUND_MS, watchConfig } from '../../lambda/local/config-watch.js';
import { type RunningServer, startLocalServer } from '../../lambda/local/server.js';
import { type FakeGemini, startFakeGemini } from '../support/fake-gemini.js';
import { tempDirs } from '../support/temp-dir.js';

const KEYS = ['fake-key-reload-0001', 'fake-key-reload-0002', 'fake-key-reload-0003'];
const TOKEN = 'reload-client-token-1';
const NEW_TOKEN = 'reload-client-token-2';
const ENV_TOKEN = 'reload-client-token-env';
const SECRETS = [...KEYS, TOKEN, NEW_TOKEN, ENV_TOKEN];
/** The documented bound, and some room for a loaded test machine. */
const WITHIN_MS = RELOAD_BOUND_MS + 1000;
const tempDir = tempDirs();

interface FileConfig {
  tokens?: string[];
  keys?: string[];
  limits?: Record<string, unknown>;
  server?: Record<string, unknown>;
}

interface Live {
  readonly server: RunningServer;
  readonly path: string;
  readonly logs: string[];
  /** Writes the config file as an editor that saves in place would. */
  write(config: FileConfig): void;
  chat(token?: string): Promise<number>;
}

describe('Integration: hot reload of the config file (npm start)', () => {
  let fake: FakeGemini;

  const yaml = (c: FileConfig) =>
    stringify({
      server: { host: '127.0.0.1', port: 0, ...c.server },
      client_tokens: c.tokens ?? [TOKEN],
      groups: [
        {
          name: 'g',
          api_keys: c.keys ?? [KEYS[0]],
          target_url: fake.openAiBase,
          ...(c.limits && { limits: c.limits }),
        },
      ],
      upstream: { native_base_url: fake.url, model_list_ms: 0 },
      policy: { transient_retry_delay_ms: 5 },
    });

  /** The server and its watcher, as `npm start` wires them, on a config file of its own. */
  async function start(initial: FileConfig, env: Env = {}): Promise<Live> {
    const path = join(tempDir('gp-reload-'), 'config.yaml');
    writeFileSync(path, yaml(initial));
    const { config, file } = loadConfigSource({ ...env, CONFIG_PATH: path });
    const logs: string[] = [];
    const logger = new JsonLogger('debug', (line) => logs.push(line));
    const server = await startLocalServer({ config, logger });
    const watch = watchConfig({
      path,
      initialText: file!.text,
      parse: (text) => configFromText(text, path, env),
      apply: (next) => server.reload(next),
      logger,
    });
    onTestFinished(async () => {
      watch.close();
      await server.close(100);
      expect(SECRETS.filter((s) => logs.join('\n').includes(s))).toEqual([]);
    });
    return {
      server,
      path,
      logs,
      write: (c) => writeFileSync(path, yaml(c)),
      chat: async (token = TOKEN) => {
        const res = await fetch(`${server.url}/v1/chat/completions`, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          body: JSON.stringify({ model: 'gemini-2.5-flash', messages: [{ role: 'user', content: 'hi' }] }),
        });
        await res.arrayBuffer();
        return res.status;
      },
    };
  }

  /** Waits until `done` holds; returns how long that took, or fails after `WITHIN_MS`. */
  async function until(done: () => boolean | Promise<boolean>): Promise<number> {
    const started = Date.now();
    while (!(await done())) {
      if (Date.now() - started > WITHIN_MS) throw new Error(`not within ${WITHIN_MS} ms`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    return Date.now() - started;
  }

  const logged = (live: Live, message: string) => () =>
    live.logs.some((l) => (JSON.parse(l) as { message: string }).message === message);

  beforeAll(async () => {
    fake = await startFakeGemini({ keys: KEYS });
  });
  beforeEach(() => fake.reset());
  afterAll(async () => {
    await fake.close();
  });

  it('accepts a token added to the file within the reload time, and answers 401 once it is removed', async () => {
    // Prepare
    const live = await start({ tokens: [TOKEN] });
    expect(await live.chat(NEW_TOKEN)).toBe(401);

    // Act: add the token
    live.write({ tokens: [TOKEN, NEW_TOKEN] });
    const tookMs = await until(async () => (await live.chat(NEW_TOKEN)) === 200);

    // Assess
    expect(tookMs).toBeLessThanOrEqual(WITHIN_MS);
    expect(await live.chat(TOKEN)).toBe(200);

    // Act: remove it again
    live.write({ tokens: [TOKEN] });
    await until(async () => (await live.chat(NEW_TOKEN)) === 401);

    // Assess
    expect(await live.chat(TOKEN)).toBe(200);
    expect(live.logs.filter((l) => l.includes('"message":"config reloaded"'))).toHaveLength(2);
  });

  it('serves with a key added to the file', async () => {
    // Prepare: one key, which Gemini then refuses with 429s
    const live = await start({ keys: [KEYS[0]!] });
    fake.failNext(KEYS[0]!, 1000, 429);
    expect(await live.chat()).toBe(429);

    // Act
    live.write({ keys: [KEYS[0]!, KEYS[1]!] });
    await until(async () => (await live.chat()) === 200);

    // Assess
    expect(fake.callsFor(KEYS[1]!).length).toBeGreaterThan(0);
  });

  it('applies a change of limits', async () => {
    // Prepare: one request a minute
    const live = await start({ limits: { rpm: 1 } });
    expect(await live.chat()).toBe(200);
    expect(await live.chat()).toBe(429);

    // Act
    live.write({ limits: { rpm: 100 } });
    await until(async () => (await live.chat()) === 200);

    // Assess: the budget already claimed counts against the new limit, not from zero
    expect(await live.chat()).toBe(200);
    expect(fake.calls).toHaveLength(3);
  });

  it('keeps a cooldown learnt before the reload in force after it', async () => {
    // Prepare: the first key answers one 429 (a minute's cooldown by default); two requests reach it
    const live = await start({ keys: [KEYS[0]!, KEYS[1]!] });
    fake.failNext(KEYS[0]!, 1, 429);
    expect([await live.chat(), await live.chat()]).toEqual([200, 200]);
    expect(fake.callsFor(KEYS[0]!)).toHaveLength(1);

    // Act: a reload (a new token), then more requests
    live.write({ keys: [KEYS[0]!, KEYS[1]!], tokens: [TOKEN, NEW_TOKEN] });
    await until(async () => (await live.chat(NEW_TOKEN)) === 200);
    for (let i = 0; i < 4; i++) expect(await live.chat()).toBe(200);

    // Assess: the cooling key was not called again
    expect(fake.callsFor(KEYS[0]!)).toHaveLength(1);
  });

  it('logs an invalid edit by field name and keeps serving the running configuration', async () => {
    // Prepare
    const live = await start({ tokens: [TOKEN] });

    // Act: a schema error (a key in a misplaced field, which must not be echoed), then a YAML syntax error
    writeFileSync(
      live.path,
      yaml({ tokens: [TOKEN, NEW_TOKEN] }).replace(
        'api_keys:',
        `api_keys: []\n    apikeys: ${KEYS[2]}\n    x:`,
      ),
    );
    await until(logged(live, 'config rejected; keeping the running configuration'));
    writeFileSync(live.path, `client_tokens: [${NEW_TOKEN}\ngroups: {{{`);
    await until(() => live.logs.filter((l) => l.includes('config rejected')).length === 2);

    // Assess
    expect(await live.chat(TOKEN)).toBe(200);
    expect(await live.chat(NEW_TOKEN)).toBe(401);
    const problems = live.logs
      .filter((l) => l.includes('config rejected'))
      .map((l) => (JSON.parse(l) as { problem: string }).problem);
    expect(problems[0]).toContain('groups[0]');
    expect(problems[1]).toContain('YAML syntax error');
    expect(live.logs.some((l) => l.includes('"message":"config reloaded"'))).toBe(false);
  });

  it('warns of a port change, applies the rest and stays on its port', async () => {
    // Prepare
    const live = await start({ tokens: [TOKEN] });
    const url = live.server.url;

    // Act
    live.write({ tokens: [TOKEN, NEW_TOKEN], server: { port: 1, idle_timeout_ms: 5000 } });
    await until(async () => (await live.chat(NEW_TOKEN)) === 200);

    // Assess
    expect(live.server.url).toBe(url);
    expect(live.server.config.server.port).toBe(0);
    const warnings = live.logs.filter((l) => l.includes('takes effect on restart'));
    expect(warnings.map((l) => (JSON.parse(l) as { message: string }).message)).toEqual([
      'server.port: takes effect on restart',
      'server.idle_timeout_ms: takes effect on restart',
    ]);
  });

  it('keeps serving while the file is gone, and picks it up when an editor renames a new one over it', async () => {
    // Prepare
    const live = await start({ tokens: [TOKEN] });

    // Act: delete, then write a new file beside it and rename it into place
    rmSync(live.path);
    await until(logged(live, 'config file unreadable; keeping the running configuration'));
    expect(await live.chat(TOKEN)).toBe(200);
    const temp = `${live.path}.swp`;
    writeFileSync(temp, yaml({ tokens: [TOKEN, NEW_TOKEN] }));
    renameSync(temp, live.path);

    // Assess
    await until(async () => (await live.chat(NEW_TOKEN)) === 200);
  });

  it('applies the environment overrides on every reload', async () => {
    // Prepare: CLIENT_TOKENS overrides the file's tokens
    const live = await start({ keys: [KEYS[0]!] }, { CLIENT_TOKENS: ENV_TOKEN });
    fake.failNext(KEYS[0]!, 1000, 429);

    // Act: the file gains a key and a token
    live.write({ keys: [KEYS[0]!, KEYS[1]!], tokens: [NEW_TOKEN] });
    await until(async () => (await live.chat(ENV_TOKEN)) === 200);

    // Assess: served with the new key, still with the environment's token only
    expect(fake.callsFor(KEYS[1]!).length).toBeGreaterThan(0);
    expect(await live.chat(NEW_TOKEN)).toBe(401);
  });
});
