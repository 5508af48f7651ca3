import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import http, { type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';

/**
 * A double of the Lambda Runtime API (the 2018-06-01 interface a runtime client polls) on 127.0.0.1, for
 * running a function under AWS's real runtime interface client (`aws-lambda-ric`) in a child process:
 * invocations are queued and handed out on `/next` (long-polled), and what the runtime posts back is
 * collected, streamed responses byte by byte with their HTTP trailers.
 */

const PREFIX = '/2018-06-01/runtime';
/** The content type a function URL's streamed response carries: a JSON prelude, 8 NUL bytes, the body. */
export const HTTP_INTEGRATION_TYPE = 'application/vnd.awslambda.http-integration-response';
const DELIMITER = Buffer.alloc(8);

export interface Prelude {
  statusCode: number;
  headers: Record<string, string>;
  cookies?: string[];
}

/** How one invocation ended, as the Runtime API saw it. */
export interface InvocationOutcome {
  readonly requestId: string;
  /**
   * `response`: the runtime posted to /response (see `complete`); `error`: it posted to /error;
   * `process-exited`: the runtime process died before either finished.
   */
  readonly kind: 'response' | 'error' | 'process-exited';
  /** Epoch ms when the invocation was handed out on /next, and when its outcome was settled. */
  readonly startedAt: number;
  readonly endedAt: number;
  readonly deadlineAt: number;
  /** The headers of the runtime's POST to /response or /error. */
  readonly requestHeaders: IncomingHttpHeaders;
  /** The response was posted with `Lambda-Runtime-Function-Response-Mode: streaming`. */
  readonly streaming: boolean;
  /** For a function URL response (content type {@link HTTP_INTEGRATION_TYPE}): the prelude. */
  readonly prelude: Prelude | undefined;
  /** The body after the prelude and its delimiter (the whole posted body when there is no prelude). */
  readonly body: Buffer;
  /** One entry per chunk received: ms since the invocation was handed out, and its size. */
  readonly chunks: ReadonlyArray<{ atMs: number; bytes: number }>;
  /** The request body ended with its terminating chunk (and trailers, if any): not cut off. */
  readonly complete: boolean;
  /** HTTP trailers of the streamed response (lower-cased names). */
  readonly trailers: Record<string, string>;
  /** From the `Lambda-Runtime-Function-Error-Type` trailer or header. */
  readonly errorType: string | undefined;
  /** The error body: the base64 JSON of the `Lambda-Runtime-Function-Error-Body` trailer, or /error's body. */
  readonly errorBody: unknown;
}

export interface InvokeOptions {
  /** Time the function has (sets `Lambda-Runtime-Deadline-Ms`); 60 s unless told. */
  timeoutMs?: number;
  requestId?: string;
}

export interface RuntimeApi {
  /** `host:port`, for `AWS_LAMBDA_RUNTIME_API`. */
  readonly address: string;
  /** Queues an invocation; resolves with how it ended (never rejects). */
  invoke(event: unknown, options?: InvokeOptions): Promise<InvocationOutcome>;
  /** How many times /next was asked (including the one the runtime is waiting on now). */
  readonly nextPolls: number;
  /** Resolves once the runtime is waiting on /next with nothing queued: done with what it was given. */
  idle(): Promise<void>;
  /** Posts to /init/error: error type and body. */
  readonly initErrors: ReadonlyArray<{ errorType: string | undefined; body: unknown }>;
  /** Settles every queued and handed-out invocation as `process-exited` (when the runtime process exits). */
  processExited(): void;
  close(): Promise<void>;
}

interface Pending {
  readonly requestId: string;
  readonly event: unknown;
  readonly deadlineAt: number;
  startedAt: number;
  /** What the runtime has posted so far to /response, for an outcome cut short by the process dying. */
  partial?: { req: IncomingMessage; parts: Buffer[]; chunks: Array<{ atMs: number; bytes: number }> };
  settle(outcome: InvocationOutcome): void;
  settled: boolean;
}

const readAll = async (req: IncomingMessage): Promise<Buffer> => {
  const parts: Buffer[] = [];
  for await (const part of req) parts.push(part as Buffer);
  return Buffer.concat(parts);
};

const parseJson = (text: string): unknown => {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
};

function splitPrelude(raw: Buffer, contentType: string | undefined): { prelude?: Prelude; body: Buffer } {
  if (!contentType?.startsWith(HTTP_INTEGRATION_TYPE)) return { body: raw };
  const at = raw.indexOf(DELIMITER);
  if (at === -1) return { body: raw };
  return {
    prelude: JSON.parse(raw.subarray(0, at).toString('utf8')) as Prelude,
    body: raw.subarray(at + DELIMITER.length),
  };
}

export async function startRuntimeApi(): Promise<RuntimeApi> {
  const queue: Pending[] = [];
  const inFlight = new Map<string, Pending>();
  const waiting: ServerResponse[] = [];
  let onIdle: Array<() => void> = [];
  const notifyIdle = () => {
    if (waiting.length === 0 || queue.length > 0) return;
    const callbacks = onIdle;
    onIdle = [];
    for (const callback of callbacks) callback();
  };
  const initErrors: Array<{ errorType: string | undefined; body: unknown }> = [];
  let nextPolls = 0;

  const handOut = (res: ServerResponse, p: Pending) => {
    p.startedAt = Date.now();
    inFlight.set(p.requestId, p);
    const body = JSON.stringify(p.event);
    res.writeHead(200, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
      'lambda-runtime-aws-request-id': p.requestId,
      'lambda-runtime-deadline-ms': String(p.deadlineAt),
      'lambda-runtime-invoked-function-arn': 'arn:aws:lambda:us-east-1:000000000000:function:ric-test',
      'lambda-runtime-trace-id': `Root=1-${Date.now().toString(16)}-${randomUUID().replace(/-/g, '').slice(0, 24)};Sampled=0`,
    });
    res.end(body);
  };

  const base = (p: Pending, req: IncomingMessage) => ({
    requestId: p.requestId,
    startedAt: p.startedAt,
    deadlineAt: p.deadlineAt,
    requestHeaders: req.headers,
    streaming: req.headers['lambda-runtime-function-response-mode'] === 'streaming',
  });

  const onResponse = (p: Pending, req: IncomingMessage, res: ServerResponse) => {
    const parts: Buffer[] = [];
    const chunks: Array<{ atMs: number; bytes: number }> = [];
    p.partial = { req, parts, chunks };
    let complete = false;
    req.on('data', (c: Buffer) => {
      parts.push(c);
      chunks.push({ atMs: Date.now() - p.startedAt, bytes: c.length });
    });
    req.on('end', () => {
      complete = true;
      res.writeHead(202, { 'content-type': 'application/json' });
      res.end('{"status":"OK"}');
    });
    // 'close' comes after 'end' on a whole request, alone on one cut off.
    req.on('close', () => {
      const raw = Buffer.concat(parts);
      const { prelude, body } = splitPrelude(raw, req.headers['content-type']);
      const trailers: Record<string, string> = {};
      if (complete)
        for (const [name, value] of Object.entries(req.trailers)) if (value) trailers[name] = value;
      const errorType = trailers['lambda-runtime-function-error-type'];
      const encoded = trailers['lambda-runtime-function-error-body'];
      p.settle({
        ...base(p, req),
        kind: 'response',
        endedAt: Date.now(),
        prelude,
        body,
        chunks,
        complete,
        trailers,
        errorType,
        errorBody: encoded === undefined ? undefined : parseJson(Buffer.from(encoded, 'base64').toString()),
      });
    });
  };

  const onError = async (p: Pending, req: IncomingMessage, res: ServerResponse) => {
    const raw = await readAll(req);
    res.writeHead(202, { 'content-type': 'application/json' });
    res.end('{"status":"OK"}');
    const errorType = req.headers['lambda-runtime-function-error-type'];
    p.settle({
      ...base(p, req),
      kind: 'error',
      endedAt: Date.now(),
      prelude: undefined,
      body: raw,
      chunks: [],
      complete: true,
      trailers: {},
      errorType: typeof errorType === 'string' ? errorType : undefined,
      errorBody: parseJson(raw.toString('utf8')),
    });
  };

  const server = http.createServer((req, res) => {
    const url = req.url ?? '/';
    if (req.method === 'GET' && url === `${PREFIX}/invocation/next`) {
      nextPolls++;
      const p = queue.shift();
      if (p) handOut(res, p);
      else {
        waiting.push(res);
        notifyIdle();
        res.on('close', () => {
          const i = waiting.indexOf(res);
          if (i !== -1) waiting.splice(i, 1);
        });
      }
      return;
    }
    const m = /^\/2018-06-01\/runtime\/invocation\/([^/]+)\/(response|error)$/.exec(url);
    if (req.method === 'POST' && m) {
      const p = inFlight.get(decodeURIComponent(m[1]!));
      if (!p) {
        res.writeHead(400, { 'content-type': 'application/json' });
        res.end('{"errorMessage":"unknown request id","errorType":"InvalidRequestID"}');
        return;
      }
      if (m[2] === 'response') onResponse(p, req, res);
      else void onError(p, req, res);
      return;
    }
    if (req.method === 'POST' && url === `${PREFIX}/init/error`) {
      void readAll(req).then((raw) => {
        const errorType = req.headers['lambda-runtime-function-error-type'];
        initErrors.push({
          errorType: typeof errorType === 'string' ? errorType : undefined,
          body: parseJson(raw.toString('utf8')),
        });
        res.writeHead(202, { 'content-type': 'application/json' });
        res.end('{"status":"OK"}');
      });
      return;
    }
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end('{"errorMessage":"not found"}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = `127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    address,
    get nextPolls() {
      return nextPolls;
    },
    initErrors,
    idle() {
      return new Promise<void>((resolve) => {
        onIdle.push(resolve);
        notifyIdle();
      });
    },
    invoke(event, options = {}) {
      return new Promise<InvocationOutcome>((resolve) => {
        const p: Pending = {
          requestId: options.requestId ?? randomUUID(),
          event,
          deadlineAt: Date.now() + (options.timeoutMs ?? 60_000),
          startedAt: 0,
          settled: false,
          settle(outcome) {
            if (p.settled) return;
            p.settled = true;
            inFlight.delete(p.requestId);
            resolve(outcome);
          },
        };
        const res = waiting.shift();
        if (res) handOut(res, p);
        else queue.push(p);
      });
    },
    processExited() {
      // One runtime process at a time: what it had not taken yet is not left for the next one either.
      for (const p of [...queue.splice(0), ...inFlight.values()]) {
        const req = p.partial?.req;
        const { prelude, body } = splitPrelude(
          Buffer.concat(p.partial?.parts ?? []),
          req?.headers['content-type'],
        );
        p.settle({
          requestId: p.requestId,
          kind: 'process-exited',
          startedAt: p.startedAt,
          endedAt: Date.now(),
          deadlineAt: p.deadlineAt,
          requestHeaders: req?.headers ?? {},
          streaming: req?.headers['lambda-runtime-function-response-mode'] === 'streaming',
          prelude,
          body,
          chunks: p.partial?.chunks ?? [],
          complete: false,
          trailers: {},
          errorType: undefined,
          errorBody: undefined,
        });
      }
    },
    close() {
      return new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      });
    },
  };
}

/** Where the runtime client is: `RIC_DIR` names the package itself or a folder whose node_modules holds it. */
export function ricEntry(ricDir: string | undefined): string | undefined {
  if (ricDir === undefined || ricDir === '') return undefined;
  for (const dir of [ricDir, join(ricDir, 'node_modules', 'aws-lambda-ric')]) {
    const entry = join(dir, 'index.mjs');
    if (existsSync(entry) && existsSync(join(dir, 'rapid-client.node'))) return entry;
  }
  return undefined;
}

export interface RuntimeProcess {
  readonly pid: number;
  /** Still running. */
  readonly alive: boolean;
  readonly exitCode: number | null;
  readonly signal: NodeJS.Signals | null;
  /** Everything it printed so far. */
  readonly stdout: string;
  readonly stderr: string;
  readonly exited: Promise<void>;
  /** Kills it (SIGKILL) if still running and waits for it. */
  stop(): Promise<void>;
}

/**
 * Starts the runtime client as Lambda does: `node index.mjs` with the task root, the handler name and the
 * Runtime API address in the environment (plus the variables the client insists on), against `api`.
 */
export function startRuntimeProcess(options: {
  entry: string;
  api: RuntimeApi;
  taskRoot: string;
  handler: string;
  env: Record<string, string>;
  /** The Node.js binary; the one running the tests unless told. */
  node?: string;
}): RuntimeProcess {
  const child: ChildProcess = spawn(options.node ?? process.execPath, [options.entry], {
    cwd: options.taskRoot,
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      LANG: 'en_US.UTF-8',
      TZ: ':UTC',
      AWS_LAMBDA_RUNTIME_API: options.api.address,
      LAMBDA_TASK_ROOT: options.taskRoot,
      _HANDLER: options.handler,
      AWS_EXECUTION_ENV: 'AWS_Lambda_nodejs24.x',
      AWS_LAMBDA_FUNCTION_NAME: 'ric-test',
      AWS_LAMBDA_FUNCTION_VERSION: '$LATEST',
      AWS_LAMBDA_FUNCTION_MEMORY_SIZE: '1024',
      AWS_LAMBDA_LOG_GROUP_NAME: '/aws/lambda/ric-test',
      AWS_LAMBDA_LOG_STREAM_NAME: '2026/01/01/[$LATEST]0123456789abcdef',
      ...options.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (c: Buffer) => {
    stdout += c.toString();
  });
  child.stderr?.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => {
      options.api.processExited();
      resolve();
    });
  });
  return {
    pid: child.pid ?? -1,
    get alive() {
      return child.exitCode === null && child.signalCode === null;
    },
    get exitCode() {
      return child.exitCode;
    },
    get signal() {
      return child.signalCode;
    },
    get stdout() {
      return stdout;
    },
    get stderr() {
      return stderr;
    },
    exited,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}
