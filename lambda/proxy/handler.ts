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

/** The Lambda runtime's streaming globals (no npm package: the runtime defines them). */
interface ResponseStream {
  write(chunk: Uint8Array | string): boolean;
  end(callback?: () => void): void;
  once(event: 'drain', listener: () => void): unknown;
}
declare const awslambda: {
  streamifyResponse(
    handler: (event: FunctionUrlEvent, stream: ResponseStream, context: LambdaContext) => Promise<void>,
  ): unknown;
  HttpResponseStream: {
    from(
      stream: ResponseStream,
      prelude: { statusCode: number; headers: Record<string, string> },
    ): ResponseStream;
  };
};

interface StreamedAnswer {
  readonly statusCode: number;
  readonly headers: Record<string, string>;
  readonly body: ProxyResponse['body'];
  /** Awaits the instance's state writes: Lambda on Node 24 no longer waits for promises left pending. */
  readonly settle: () => Promise<void>;
}

/**
 * Writes an answer to the runtime's response stream: the prelude with the status on the first write
 * (an empty body still gets one, or the status is lost), then each chunk as it comes.
 *
 * A body that fails midway (Gemini's connection cut, the deadline) is never ended as if it were whole and
 * the stream is never destroyed: destroying it rejects promises inside AWS's runtime client that nobody
 * awaits, which kills the process. The error is thrown instead, with the stream left open; the runtime
 * then ends the response with its error trailers, so the client sees a cut body, not a complete one.
 */
async function writeAnswer(answer: StreamedAnswer, responseStream: ResponseStream): Promise<void> {
  const stream = awslambda.HttpResponseStream.from(responseStream, {
    statusCode: answer.statusCode,
    headers: answer.headers,
  });
  const write = async (chunk: Uint8Array | string) => {
    if (!stream.write(chunk)) await new Promise<void>((resolve) => stream.once('drain', resolve));
  };
  try {
    const { body } = answer;
    if (typeof body === 'string' || body instanceof Uint8Array) {
      await write(body);
    } else {
      let wrote = false;
      for await (const chunk of body) {
        wrote = true;
        await write(chunk);
      }
      if (!wrote) await write(new Uint8Array(0));
    }
  } finally {
    await answer.settle();
  }
  await new Promise<void>((resolve) => stream.end(resolve));
}

/**
 * The request side, as middy middleware can wrap it: event in, the answer out with its body still to
 * stream. The core decides the status once Gemini's headers arrive (retries happen before).
 */
const answer = middy<FunctionUrlEvent, StreamedAnswer, Error, LambdaContext>().handler(
  async (event: FunctionUrlEvent, context: LambdaContext): Promise<StreamedAnswer> => {
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
        settle: async () => undefined,
      };
    }
    const current = runtime;
    // End the request (cleanly: 504 before Gemini answers, an SSE error event after) before Lambda's own end.
    const deadlineAt = Date.now() + context.getRemainingTimeInMillis() - ABORT_MARGIN_MS;
    const response = await current.handle(toRequest(event, deadlineAt));
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(response.headers)) if (!DROP.has(name)) headers[name] = value;
    return { statusCode: response.status, headers, body: response.body, settle: () => current.settle() };
  },
);

/**
 * Lambda entry, streamed through a function URL (`InvokeMode.RESPONSE_STREAM`): middy runs the request
 * side, {@link writeAnswer} the streaming side. The streaming is not middy's own (its `pipeline` destroys
 * the runtime's stream when a body fails, which crashes AWS's runtime client).
 */
export const handler = awslambda.streamifyResponse(async (event, responseStream, context) => {
  await writeAnswer(await answer(event, context), responseStream);
});
