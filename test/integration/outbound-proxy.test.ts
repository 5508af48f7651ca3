import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../lambda/core/config/parse.js';
import { type ConnectProxy, startConnectProxy } from '../support/connect-proxy.js';
import {
  chatBody,
  type Harness,
  KEYS,
  leaks,
  MODEL,
  postChat,
  startHarness,
  TOKEN,
} from '../support/harness.js';
import { type Socks5Server, startSocks5Server } from '../support/socks5-server.js';

const PASSWORD = 'pr0xy-pass-word-9f3';
const AUTH = { username: 'gw', password: PASSWORD };
const OTHER_MODEL = 'gemini-2.5-pro';

type Double = ConnectProxy | Socks5Server;
const SCHEMES = [
  { scheme: 'http', start: () => startConnectProxy({ auth: AUTH }) },
  { scheme: 'socks5', start: () => startSocks5Server({ auth: AUTH }) },
  { scheme: 'socks5h', start: () => startSocks5Server({ auth: AUTH }) },
] as const;

let opened: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  await Promise.all(opened.map((o) => o.close()));
  opened = [];
});

/** `scheme://user:password@127.0.0.1:port` for a double. */
function proxyUrl(scheme: string, double: Double, password = PASSWORD): string {
  return `${scheme}://${AUTH.username}:${encodeURIComponent(password)}@127.0.0.1:${double.port}`;
}

/** A proxy with a group served through `proxy_url` (for MODEL) and a direct group (for OTHER_MODEL). */
async function harness(url: string): Promise<Harness> {
  const h = await startHarness({
    groups: (fake) => [
      { name: 'proxied', api_keys: [KEYS[0]], target_url: fake.openAiBase, models: [MODEL], proxy_url: url },
      { name: 'direct', api_keys: [KEYS[1]], target_url: fake.openAiBase, models: [OTHER_MODEL] },
    ],
    config: { upstream: { connect_timeout_ms: 500 } },
  });
  opened.push(h);
  return h;
}

describe('Outbound proxy per group', () => {
  for (const { scheme, start } of SCHEMES) {
    describe(`${scheme}://`, () => {
      it('serves chat, streaming chat, native streaming and embeddings through the proxy; the direct group bypasses it', async () => {
        // Prepare
        const double = await start();
        opened.push(double);
        const h = await harness(proxyUrl(scheme, double));

        // Act
        const whole = await h.openai.chat.completions.create({
          model: MODEL,
          messages: [{ role: 'user', content: 'hi' }],
        });
        const stream = await h.openai.chat.completions.create({
          model: MODEL,
          messages: [{ role: 'user', content: 'hi' }],
          stream: true,
        });
        let chunks = 0;
        for await (const _ of stream) chunks++;
        const native = await fetch(`${h.url}/v1beta/models/${MODEL}:streamGenerateContent?alt=sse`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-goog-api-key': TOKEN },
          body: JSON.stringify({ contents: [{ parts: [{ text: 'hi' }] }] }),
        });
        const nativeText = await native.text();
        const embedding = await h.openai.embeddings.create({ model: MODEL, input: 'hi' });
        const tunnelsBefore = double.tunnels;
        const direct = await postChat(h, chatBody(OTHER_MODEL));

        // Assess
        expect(whole.choices[0]?.message.content).toBeTruthy();
        expect(chunks).toBeGreaterThan(1);
        expect(native.status).toBe(200);
        expect(nativeText).toContain('data: {');
        expect(embedding.data.length).toBeGreaterThan(0);
        expect(double.tunnels).toBeGreaterThan(0);
        expect(h.fake.calls.filter((c) => c.model === MODEL)).toHaveLength(4);
        expect(direct.status).toBe(200);
        // The direct group's call opened no tunnel.
        expect(double.tunnels).toBe(tunnelsBefore);
        expect(leaks(h, [...KEYS, TOKEN, PASSWORD])).toEqual([]);
      });

      it('answers 502 upstream_proxy_failed on wrong proxy credentials, without the password, and keeps the key', async () => {
        // Prepare
        const double = await start();
        opened.push(double);
        const h = await harness(proxyUrl(scheme, double, 'wrong-password-7c1'));

        // Act
        const res = await postChat(h);
        const body = (await res.json()) as { error: { code: string; message: string } };
        const detailed = (await (
          await fetch(`${h.url}/health/detailed`, { headers: { authorization: `Bearer ${TOKEN}` } })
        ).json()) as {
          groups: Array<{ name: string; proxy: string | null; keys: Array<{ status: string }> }>;
        };

        // Assess
        expect(res.status).toBe(502);
        expect(body.error.code).toBe('upstream_proxy_failed');
        expect(body.error.message).toContain(`${scheme}://127.0.0.1:${double.port}`);
        expect(JSON.stringify(body)).not.toContain('wrong-password-7c1');
        expect(h.logs.join('\n')).not.toContain('wrong-password-7c1');
        expect(h.fake.calls).toHaveLength(0);
        expect(detailed.groups.find((g) => g.name === 'proxied')?.keys[0]?.status).toBe('active');
        expect(detailed.groups.map((g) => g.proxy)).toEqual([`${scheme}://127.0.0.1:${double.port}`, null]);
      });
    });
  }

  it('answers a proxy that is down or hangs in the handshake within bounded time, as a transient failure', async () => {
    // Prepare
    const hanging = await startSocks5Server({ hang: true });
    opened.push(hanging);
    const down = await startConnectProxy();
    const downPort = down.port;
    await down.close();

    for (const url of [`socks5://127.0.0.1:${hanging.port}`, `http://127.0.0.1:${downPort}`]) {
      const h = await harness(url);
      const started = Date.now();

      // Act
      const res = await postChat(h);
      const body = (await res.json()) as { error: { code: string } };

      // Assess
      expect(res.status).toBe(502);
      expect(body.error.code).toBe('upstream_proxy_failed');
      // connect_timeout_ms is 500 per call; a few same-key retries stay well under 10 s.
      expect(Date.now() - started).toBeLessThan(10_000);
      expect(h.fake.calls).toHaveLength(0);
    }
  });

  it('refuses a malformed proxy_url naming the field, without echoing it', () => {
    // Act
    const parse = () =>
      parseConfig({
        client_tokens: [TOKEN],
        groups: [{ name: 'g', api_keys: [KEYS[0]], proxy_url: 'ftp://u:s3cret-xyz@h:21' }],
      });

    // Assess
    expect(parse).toThrow(/groups\[0\]\.proxy_url: unsupported scheme/);
    expect(parse).not.toThrow(/s3cret-xyz/);
  });
});
