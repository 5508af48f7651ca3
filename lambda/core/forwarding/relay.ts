/** Passing a successful Gemini answer through to the client as it streams. */
import { clientResponseHeaders, headerValue } from '../headers.js';
import type { BodyStream, ProxyResponse, UpstreamResponse } from '../http.js';
import { sseErrorEvent } from '../openai-errors.js';
import { UsageTail } from '../usage.js';

/**
 * Thrown by a relayed body that is not SSE when it fails midway (upstream error or the deadline): the
 * entry cuts the response (its name is what Lambda's runtime reports as the error type).
 */
export class BodyCutError extends Error {
  constructor(
    readonly why: 'deadline' | 'upstream_failed',
    cause: unknown,
  ) {
    super(
      why === 'deadline'
        ? 'The answer was cut off at the proxy request deadline.'
        : 'The upstream answer failed before it completed.',
      { cause },
    );
    this.name = 'BodyCutError';
  }
}

export interface RelayOptions {
  /** The client's own signal: aborted when it went away. */
  readonly clientSignal: AbortSignal;
  /** The request's signal: the client's, or the request deadline. */
  readonly signal: AbortSignal;
  /**
   * Called once when the relay ends, however it ends: `streamError` says why it ended early
   * (`client_gone`, `deadline`, `upstream_failed`), `tokens` what Gemini reported of a complete answer.
   */
  readonly ended: (
    streamError: string | undefined,
    tokens: { input: number; output: number } | undefined,
  ) => void;
}

const encoder = new TextEncoder();

/**
 * Streams a successful upstream body to the client chunk by chunk. A failure midway (upstream error or
 * the request deadline) ends an SSE stream with an in-band error event and cuts any other body
 * ({@link BodyCutError}); a client that left gets nothing.
 */
export function relay(response: UpstreamResponse, options: RelayOptions): ProxyResponse {
  const sse = /^text\/event-stream/i.test(headerValue(response.headers, 'content-type') ?? '');
  const { clientSignal, signal, ended } = options;
  const usage = new UsageTail();
  async function* pass(body: BodyStream): AsyncGenerator<Uint8Array> {
    let outcome: string | undefined = 'client_gone';
    let tokens: { input: number; output: number } | undefined;
    try {
      for await (const chunk of body) {
        usage.see(chunk);
        yield chunk;
      }
      outcome = undefined;
      tokens = usage.usage();
    } catch (err) {
      if (clientSignal.aborted) throw err;
      const why = signal.aborted ? 'deadline' : 'upstream_failed';
      outcome = why;
      // A body that isn't SSE can't say it failed: it is cut, so the client can't take it for whole.
      if (!sse) throw new BodyCutError(why, err);
      const message =
        why === 'deadline'
          ? 'The stream was cut off at the proxy request deadline.'
          : 'The upstream stream failed before it completed.';
      yield encoder.encode(sseErrorEvent(message, why === 'deadline' ? 'deadline_exceeded' : undefined));
    } finally {
      // Also reached when the consumer stops early (client gone): then outcome is still 'client_gone'.
      ended(outcome, tokens);
    }
  }
  return {
    status: response.status,
    headers: clientResponseHeaders(response.headers),
    body: pass(response.body),
  };
}
