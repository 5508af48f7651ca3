import { PassThrough } from 'node:stream';

/** What a streamed invocation produced: the prelude the runtime got, the body, and when each write came. */
export interface StreamedResult {
  readonly prelude: { statusCode: number; headers: Record<string, string> } | undefined;
  readonly body: string;
  /** ms since the invocation started, one per body write. */
  readonly writes: number[];
}

type Handler = (event: unknown, stream: PassThrough, context: unknown) => Promise<unknown>;

/**
 * Stands in for the Lambda Node.js runtime's streaming globals, as middy's own tests do: an identity
 * `streamifyResponse`, and an `HttpResponseStream.from` that writes the metadata prelude and its 8 NUL
 * delimiter on the first body write (the runtime's behaviour). Install before importing a handler.
 */
export function installAwsLambdaStub(): void {
  (globalThis as Record<string, unknown>).awslambda = {
    streamifyResponse: (fn: Handler) => fn,
    HttpResponseStream: {
      from(stream: PassThrough, prelude: Record<string, unknown>) {
        const write = stream.write.bind(stream) as (...a: unknown[]) => boolean;
        let first = true;
        stream.write = ((...args: unknown[]) => {
          if (first) {
            first = false;
            write(Buffer.from(JSON.stringify(prelude)));
            write(Buffer.alloc(8));
          }
          return write(...args);
        }) as typeof stream.write;
        return stream;
      },
    },
  };
}

/** Invokes a streaming handler with a function URL event and collects what it streamed. */
export async function invokeStreaming(
  handler: Handler,
  event: unknown,
  remainingMs = 60_000,
): Promise<StreamedResult> {
  const stream = new PassThrough();
  const started = Date.now();
  const chunks: Buffer[] = [];
  const writes: number[] = [];
  stream.on('data', (c: Buffer) => {
    chunks.push(c);
    writes.push(Date.now() - started);
  });
  const ended = new Promise<void>((resolve) => stream.on('end', resolve));
  await handler(event, stream, { getRemainingTimeInMillis: () => remainingMs - (Date.now() - started) });
  await ended;
  const raw = Buffer.concat(chunks);
  const delimiter = raw.indexOf(Buffer.alloc(8));
  if (delimiter === -1) return { prelude: undefined, body: raw.toString('utf8'), writes };
  return {
    prelude: JSON.parse(raw.subarray(0, delimiter).toString('utf8')) as StreamedResult['prelude'],
    body: raw.subarray(delimiter + 8).toString('utf8'),
    // The first two writes are the prelude and its delimiter.
    writes: writes.slice(2),
  };
}

let seq = 0;

/** A Lambda function URL event (payload format 2.0). */
export function functionUrlEvent(
  method: string,
  path: string,
  options: { headers?: Record<string, string>; body?: string; query?: string } = {},
): Record<string, unknown> {
  const requestId = `req-${Date.now()}-${++seq}`;
  return {
    version: '2.0',
    rawPath: path,
    rawQueryString: options.query ?? '',
    headers: { host: 'abc.lambda-url.us-east-1.on.aws', ...options.headers },
    body: options.body === undefined ? undefined : Buffer.from(options.body).toString('base64'),
    isBase64Encoded: options.body !== undefined,
    requestContext: { requestId, http: { method, path, sourceIp: '127.0.0.1' } },
  };
}
