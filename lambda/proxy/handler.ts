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

function toRequest(event: FunctionUrlEvent, signal: AbortSignal): ProxyRequest {
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
    signal,
  };
}

/**
 * The body as a Node stream whose end waits for the instance's state writes: Lambda on Node 24 no
 * longer waits for promises left pending after the response, so they are awaited in-stream.
 */
function toStream(body: ProxyResponse['body'], settle: () => Promise<void>): Readable {
  async function* chunks(): AsyncGenerator<Uint8Array> {
    try {
      if (typeof body === 'string') {
        if (body.length > 0) yield Buffer.from(body);
      } else if (body instanceof Uint8Array) {
        if (body.byteLength > 0) yield body;
      } else {
        for await (const chunk of body) yield chunk;
      }
    } finally {
      await settle();
    }
  }
  return Readable.from(chunks(), { objectMode: false });
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
  runtime ??= new ProxyRuntime(process.env as ProxyFunctionEnv);
  const controller = new AbortController();
  // Abort Gemini before Lambda kills the function: the client then gets a clean end, not a cut.
  const timer = setTimeout(
    () => controller.abort(),
    Math.max(0, context.getRemainingTimeInMillis() - ABORT_MARGIN_MS),
  );
  const current = runtime;
  const response = await current.handle(toRequest(event, controller.signal));
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(response.headers)) if (!DROP.has(name)) headers[name] = value;
  return {
    statusCode: response.status,
    headers,
    body: toStream(response.body, async () => {
      clearTimeout(timer);
      await current.settle();
    }),
  };
});
