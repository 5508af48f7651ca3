import { Readable } from 'node:stream';
import middy from '@middy/core';
import type { ProxyRequest, ProxyResponse } from '../core/http.js';
import { type ProxyFunctionEnv, ProxyRuntime } from './runtime.js';

/** The Lambda function URL event (payload format 2.0), as much of it as the proxy reads. */
export interface FunctionUrlEvent {
  readonly rawPath: string;
  readonly rawQueryString?: string;
  readonly headers?: Record<string, string | undefined>;
  readonly body?: string;
  readonly isBase64Encoded?: boolean;
  readonly requestContext: { readonly requestId: string; readonly http: { readonly method: string } };
}

export interface LambdaContext {
  getRemainingTimeInMillis(): number;
}

/** Time kept back from the function's deadline to end the stream cleanly after aborting upstream. */
const ABORT_MARGIN_MS = 3000;

/** Headers a streamed function URL response must not carry: the runtime frames and may re-encode the body. */
const DROP = new Set(['content-length', 'content-encoding', 'transfer-encoding', 'connection']);

let runtime: ProxyRuntime | undefined;
/** Lambda does not tell a function that its client went away: this signal never fires. */
const clientStaysSignal = new AbortController().signal;

function toRequest(event: FunctionUrlEvent, deadlineAt: number): ProxyRequest {
  const body =
    event.body === undefined
      ? undefined
      : new Uint8Array(Buffer.from(event.body, event.isBase64Encoded ? 'base64' : 'utf8'));
  return {
    method: event.requestContext.http.method,
    path: event.rawPath,
    query: event.rawQueryString ?? '',
    headers: event.headers ?? {},
    body,
    // The function URL's request id: the same id in the response, our logs and Lambda's own.
    requestId: event.requestContext.requestId,
    signal: clientStaysSignal,
    deadlineAt,
  };
}

/**
 * The body as a Node stream whose end waits for the instance's state writes: Lambda on Node 24 no
 * longer waits for promises left pending after the response, so they are awaited in-stream.
 */
function toStream(body: ProxyResponse['body'], settle: () => Promise<void>): Readable {
  async function* chunks(): AsyncGenerator<Uint8Array> {
    try {
      if (typeof body === 'string' || body instanceof Uint8Array) {
        // Even an empty body gets one (empty) write: the runtime sends the status with the first write.
        yield typeof body === 'string' ? Buffer.from(body) : body;
      } else {
        let wrote = false;
        for await (const chunk of body) {
          wrote = true;
          yield chunk;
        }
        if (!wrote) yield Buffer.alloc(0);
      }
    } finally {
      await settle();
    }
  }
  // Object mode so that an empty chunk is still written (a byte stream would drop it).
  return Readable.from(chunks(), { objectMode: true });
}

/**
 * Lambda entry, streamed through a function URL (`InvokeMode.RESPONSE_STREAM`). The core decides the
 * status once Gemini's headers arrive (retries happen before), so middy writes the prelude with the real
 * status and then pipes the body chunk by chunk. Errors can't reach middy's onError once streaming has
 * begun; the core never throws and ends a failed SSE stream with an in-band error event instead.
 */
export const handler = middy<FunctionUrlEvent, unknown, Error, LambdaContext>({
  streamifyResponse: true,
}).handler(async (event: FunctionUrlEvent, context: LambdaContext) => {
  try {
    runtime ??= new ProxyRuntime(process.env as ProxyFunctionEnv);
  } catch (err) {
    // A deployment problem (settings, variables): answer plainly and say why in the log, every time.
    const message = err instanceof Error ? err.message : 'unknown';
    process.stdout.write(
      `${JSON.stringify({ level: 'error', message: 'proxy cannot start', problem: message })}\n`,
    );
    return {
      statusCode: 503,
      headers: { 'content-type': 'application/json', 'x-request-id': event.requestContext.requestId },
      body: JSON.stringify({
        error: {
          message: 'The proxy is misconfigured; see its logs.',
          type: 'server_error',
          param: null,
          code: 'proxy_misconfigured',
        },
      }),
    };
  }
  const current = runtime;
  // End the request (cleanly: 504 before Gemini answers, an SSE error event after) before Lambda's own end.
  const deadlineAt = Date.now() + context.getRemainingTimeInMillis() - ABORT_MARGIN_MS;
  const response = await current.handle(toRequest(event, deadlineAt));
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(response.headers)) if (!DROP.has(name)) headers[name] = value;
  return { statusCode: response.status, headers, body: toStream(response.body, () => current.settle()) };
});
