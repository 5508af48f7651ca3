import net from 'node:net';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { chatBody, type Harness, MODEL, startHarness, TOKEN } from '../support/harness.js';

/** Small bounds, so that each test sees them at work in well under a second. */
const LIMITS = {
  header_timeout_ms: 300,
  request_receive_timeout_ms: 1500,
  idle_timeout_ms: 400,
  write_stall_timeout_ms: 300,
};

const open = new Set<net.Socket>();

interface Raw {
  readonly socket: net.Socket;
  /** Everything the server sent so far. */
  text(): string;
  /** When the connection was opened (ms since epoch). */
  readonly openedAt: number;
  /** Resolves with the time (ms since epoch) the server closed or reset the connection. */
  readonly closed: Promise<number>;
}

/** A plain TCP connection to the proxy: the way to send what no HTTP client would. */
async function connect(url: string): Promise<Raw> {
  const socket = net.connect(Number(new URL(url).port), '127.0.0.1');
  open.add(socket);
  let data = '';
  socket.on('data', (d: Buffer) => {
    data += d.toString('latin1');
  });
  socket.on('error', () => undefined);
  const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now())));
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  return { socket, text: () => data, openedAt: Date.now(), closed };
}

/** The close time, or undefined if the connection is still open after `ms`. */
function closedWithin(raw: Raw, ms: number): Promise<number | undefined> {
  return Promise.race([raw.closed, new Promise<undefined>((r) => setTimeout(() => r(undefined), ms))]);
}

/** Writes `piece` every `everyMs` until the connection closes; returns a stop function. */
function dribble(raw: Raw, piece: string, everyMs: number): () => void {
  const timer = setInterval(() => {
    if (!raw.socket.destroyed) raw.socket.write(piece);
  }, everyMs);
  void raw.closed.then(() => clearInterval(timer));
  return () => clearInterval(timer);
}

/** Splits one raw HTTP/1.1 answer (framed by Content-Length) into status, headers and body. */
function parseAnswer(text: string): { status: number; headers: Record<string, string>; body: string } {
  const end = text.indexOf('\r\n\r\n');
  expect(end).toBeGreaterThan(0);
  const [statusLine = '', ...lines] = text.slice(0, end).split('\r\n');
  const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(statusLine)?.[1]);
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const i = line.indexOf(':');
    headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  return { status, headers, body: text.slice(end + 4) };
}

/** Asserts an OpenAI-shaped JSON error answer with `status` and `code`. */
function expectOpenAiError(text: string, status: number, code: string): void {
  const answer = parseAnswer(text);
  expect(answer.status).toBe(status);
  expect(answer.headers['content-type']).toMatch(/^application\/json/);
  expect(Number(answer.headers['content-length'])).toBe(Buffer.byteLength(answer.body));
  const body = JSON.parse(answer.body) as { error: Record<string, unknown> };
  expect(body).toEqual({
    error: { message: expect.any(String), type: 'invalid_request_error', param: null, code },
  });
}

afterEach(() => {
  for (const socket of open) socket.destroy();
  open.clear();
});

describe('Integration: bounded resources on the local server', () => {
  let h: Harness;

  beforeAll(async () => {
    h = await startHarness({ config: { server: { ...LIMITS, max_body_bytes: 64 * 1024 } } });
  });
  beforeEach(() => {
    h.fake.reset();
    h.fake.options.streamChunkDelayMs = 0;
    h.fake.options.streamChunks = undefined;
  });
  afterAll(async () => {
    await h.close();
  });

  describe('timeouts', () => {
    it('closes a connection that sends nothing within the header timeout', async () => {
      const raw = await connect(h.url);
      const closedAt = await closedWithin(raw, 2000);
      expect(closedAt).toBeDefined();
      expect(closedAt! - raw.openedAt).toBeLessThan(LIMITS.header_timeout_ms + 400);
    });

    it('closes a connection that dribbles its headers, with a 408 in OpenAI shape', async () => {
      // Prepare: a request line, then one header line every 50 ms, forever
      const raw = await connect(h.url);
      raw.socket.write('GET /health HTTP/1.1\r\nhost: 127.0.0.1\r\n');
      dribble(raw, 'x-slow: 1\r\n', 50);

      // Act
      const closedAt = await closedWithin(raw, 2000);

      // Assess
      expect(closedAt).toBeDefined();
      expect(closedAt! - raw.openedAt).toBeLessThan(LIMITS.header_timeout_ms + 400);
      expectOpenAiError(raw.text(), 408, 'request_timeout');
    });

    it('closes a request whose body dribbles past the receive timeout, calling nobody', async () => {
      // Prepare: an authenticated request announcing 10 000 bytes, sent one byte every 50 ms
      const raw = await connect(h.url);
      raw.socket.write(
        `POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer ${TOKEN}\r\n` +
          'content-type: application/json\r\ncontent-length: 10000\r\n\r\n{',
      );
      dribble(raw, ' ', 50);

      // Act
      const closedAt = await closedWithin(raw, 4000);

      // Assess
      expect(closedAt).toBeDefined();
      expect(closedAt! - raw.openedAt).toBeLessThan(LIMITS.request_receive_timeout_ms + 600);
      expectOpenAiError(raw.text(), 408, 'request_timeout');
      expect(h.fake.calls).toHaveLength(0);
    });

    it('closes an idle keep-alive connection after the idle timeout (and the 1 s node:http adds)', async () => {
      // Prepare: one complete request on a keep-alive connection
      const raw = await connect(h.url);
      raw.socket.write('GET /health HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n');
      await vi.waitFor(() => expect(raw.text()).toContain('{"status":"ok"}'));
      const answeredAt = Date.now();

      // Act
      const closedAt = await closedWithin(raw, 3000);

      // Assess
      expect(closedAt).toBeDefined();
      expect(closedAt! - answeredAt).toBeGreaterThanOrEqual(LIMITS.idle_timeout_ms - 50);
      expect(closedAt! - answeredAt).toBeLessThan(LIMITS.idle_timeout_ms + 1000 + 400);
    });

    it('disconnects a client that keeps dribbling its body after a 401, promptly', async () => {
      // Prepare: no token; 100 000 bytes announced, then one byte every 50 ms
      const raw = await connect(h.url);
      raw.socket.write(
        'POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\n' +
          'content-type: application/json\r\ncontent-length: 100000\r\n\r\n{',
      );
      dribble(raw, ' ', 50);

      // Act
      await vi.waitFor(() => expect(raw.text()).toContain('"code":"invalid_api_key"'), { timeout: 1000 });
      const answeredAt = Date.now();
      const closedAt = await closedWithin(raw, 3000);

      // Assess: closed right after the answer, long before the receive timeout would have done it
      expect(closedAt).toBeDefined();
      expect(closedAt! - answeredAt).toBeLessThan(1000);
      expect(closedAt! - raw.openedAt).toBeLessThan(LIMITS.request_receive_timeout_ms);
      const answer = parseAnswer(raw.text());
      expect(answer.status).toBe(401);
      expect(answer.headers.connection).toBe('close');
    });

    it('keeps a connection open after a 401 whose body came whole', async () => {
      // Prepare: no token, a complete small body, then a second request on the same connection
      const raw = await connect(h.url);
      const body = chatBody();
      const head =
        'POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\n' +
        `content-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n`;

      // Act
      raw.socket.write(head + body);
      await vi.waitFor(() => expect(raw.text()).toContain('"code":"invalid_api_key"'));
      raw.socket.write('GET /health HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n');

      // Assess
      await vi.waitFor(() => expect(raw.text()).toContain('{"status":"ok"}'));
    });

    it('does not cut a long, slow stream: gaps beyond the write-stall bound, length beyond the receive bound', async () => {
      // Prepare: 6 chunks 400 ms apart: 2 s in all
      h.fake.options.streamChunks = 6;
      h.fake.options.streamChunkDelayMs = 400;

      // Act
      const res = await fetch(`${h.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
        body: chatBody(MODEL, { stream: true }),
      });
      const text = await res.text();

      // Assess
      expect(res.status).toBe(200);
      expect(text).toContain('data: [DONE]');
      expect(h.fake.aborted).toBe(0);
    });

    it('disconnects a client that stops reading, and aborts the upstream call', async () => {
      // Prepare: a stream of 100 000 chunks (some 20 MB), far more than the socket buffers hold
      h.fake.options.streamChunks = 100_000;
      const serverSockets = new Map<number | undefined, net.Socket>();
      const onConnection = (s: net.Socket) => serverSockets.set(s.remotePort, s);
      h.server.server.on('connection', onConnection);
      const raw = await connect(h.url);
      const body = chatBody(MODEL, { stream: true });

      // Act: send the request, then never read
      raw.socket.pause();
      raw.socket.write(
        `POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer ${TOKEN}\r\n` +
          `content-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`,
      );

      // Assess: the server drops the connection and the upstream call is aborted
      try {
        await vi.waitFor(() => expect(h.fake.aborted).toBe(1), { timeout: 8000 });
        const mine = serverSockets.get(raw.socket.localPort);
        expect(mine).toBeDefined();
        await vi.waitFor(() => expect(mine!.destroyed).toBe(true), { timeout: 1000 });
        expect(h.logs.join('')).toContain('"message":"client stopped reading"');
        // The client, reading again, finds the connection reset
        raw.socket.resume();
        expect(await closedWithin(raw, 2000)).toBeDefined();
      } finally {
        h.server.server.off('connection', onConnection);
      }
    });
  });

  describe('malformed HTTP', () => {
    it.each([
      ['a malformed request line', 'GARBAGE\r\n\r\n', 400, 'malformed_request'],
      [
        'an invalid header name',
        'GET /health HTTP/1.1\r\nhost: 127.0.0.1\r\nbad header: 1\r\n\r\n',
        400,
        'malformed_request',
      ],
      [
        'bad chunked framing',
        `POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer ${TOKEN}\r\n` +
          'transfer-encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n',
        400,
        'malformed_request',
      ],
      [
        'both Content-Length and chunked',
        'POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: 2\r\n' +
          'transfer-encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n',
        400,
        'malformed_request',
      ],
      [
        'headers over 16 KiB',
        `GET /health HTTP/1.1\r\nhost: 127.0.0.1\r\nx-big: ${'a'.repeat(20 * 1024)}\r\n\r\n`,
        431,
        'headers_too_large',
      ],
      ['an HTTP/1.1 request without Host', 'GET /health HTTP/1.1\r\n\r\n', 400, 'missing_host'],
      [
        'an unknown expectation',
        'POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\nexpect: foo\r\ncontent-length: 2\r\n\r\n{}',
        417,
        'expectation_failed',
      ],
      ['CONNECT', 'CONNECT 127.0.0.1:443 HTTP/1.1\r\nhost: 127.0.0.1:443\r\n\r\n', 405, 'method_not_allowed'],
    ])('answers %s in OpenAI shape and closes the connection', async (_name, request, status, code) => {
      // Act
      const raw = await connect(h.url);
      raw.socket.write(request);
      const closedAt = await closedWithin(raw, 2000);

      // Assess
      expect(closedAt).toBeDefined();
      expectOpenAiError(raw.text(), status, code);
      expect(h.fake.calls).toHaveLength(0);
    });

    it('asks for the body of an `Expect: 100-continue` request only once the token is good', async () => {
      const body = chatBody();
      const head = (auth: string) =>
        `POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\n${auth}content-type: application/json\r\n` +
        `content-length: ${body.length}\r\nexpect: 100-continue\r\nconnection: close\r\n\r\n`;

      // Act: no token, and a body that never comes
      const refused = await connect(h.url);
      refused.socket.write(head(''));
      await closedWithin(refused, 2000);

      // Assess: a 401 straight away, no invitation to send the body
      expect(refused.text()).toMatch(/^HTTP\/1\.1 401 /);

      // Act: with the token, the body goes after the 100
      const accepted = await connect(h.url);
      accepted.socket.write(head(`authorization: Bearer ${TOKEN}\r\n`));
      await vi.waitFor(() => expect(accepted.text()).toMatch(/^HTTP\/1\.1 100 Continue\r\n\r\n/));
      accepted.socket.write(body);
      await closedWithin(accepted, 2000);

      // Assess
      expect(accepted.text()).toMatch(/\r\n\r\nHTTP\/1\.1 200 /);
    });
  });

  describe('logs', () => {
    it('logs at most a bounded part of a long path', async () => {
      // Act: a 12 KB path, refused with 404
      const path = `/${'p'.repeat(12 * 1024)}`;
      const res = await fetch(`${h.url}${path}`);
      const requestId = res.headers.get('x-request-id');

      // Assess
      expect(res.status).toBe(404);
      const line = h.logs.find((l) => l.includes(`"requestId":"${requestId}"`));
      expect(line).toBeDefined();
      expect(line!.length).toBeLessThan(1600);
      const logged = JSON.parse(line!) as { path: string };
      expect(logged.path.startsWith('/ppp')).toBe(true);
      expect(logged.path).toMatch(/…\[\+\d+ chars\]$/);
    });
  });
});

describe('Integration: unauthenticated loopback server refuses other sites (DNS rebinding)', () => {
  let h: Harness;
  let port: number;

  beforeAll(async () => {
    h = await startHarness({ clientTokens: [], config: { server: { allow_unauthenticated: true } } });
    port = Number(new URL(h.url).port);
  });
  afterAll(async () => {
    await h.close();
  });
  beforeEach(() => h.fake.reset());

  async function get(headers: string): Promise<string> {
    const raw = await connect(h.url);
    raw.socket.write(`GET /v1/models HTTP/1.1\r\n${headers}connection: close\r\n\r\n`);
    await closedWithin(raw, 2000);
    return raw.text();
  }

  it.each([
    ['a foreign Host', () => 'host: evil.example\r\n', 'forbidden_host'],
    ['a foreign Host on the right port', () => `host: evil.example:${port}\r\n`, 'forbidden_host'],
    ['a loopback Host on another port', () => `host: 127.0.0.1:${port + 1}\r\n`, 'forbidden_host'],
    [
      'a foreign Origin',
      () => `host: 127.0.0.1:${port}\r\norigin: http://evil.example\r\n`,
      'forbidden_origin',
    ],
    ['an opaque Origin', () => `host: localhost:${port}\r\norigin: null\r\n`, 'forbidden_origin'],
  ])('refuses %s with 403, calling nobody', async (_name, headers, code) => {
    const text = await get(headers());
    const answer = parseAnswer(text);
    expect(answer.status).toBe(403);
    expect(JSON.parse(answer.body)).toEqual({
      error: { message: expect.any(String), type: 'invalid_request_error', param: null, code },
    });
    expect(h.fake.calls).toHaveLength(0);
  });

  it.each([
    ['127.0.0.1', () => `host: 127.0.0.1:${port}\r\n`],
    ['localhost', () => `host: localhost:${port}\r\n`],
    ['[::1]', () => `host: [::1]:${port}\r\n`],
    ['a loopback Origin', () => `host: 127.0.0.1:${port}\r\norigin: http://localhost:3000\r\n`],
  ])('serves Host %s', async (_name, headers) => {
    const text = await get(headers());
    expect(parseAnswer(text).status).toBe(200);
    expect(h.fake.calls).toHaveLength(1);
  });
});
