import type { ProxyEndpoint } from './upstream-proxy.js';
/** The web-standard seam between an entry point (local server, Lambda) and the core proxy. */

export type HeaderValue = string | string[] | undefined;
/** Request headers with lower-case names, as node:http and Lambda payload 2.0 give them. */
export type Headers = Record<string, HeaderValue>;

/** A body the core can stream: Node streams and web ReadableStreams are both async iterables. */
export type BodyStream = AsyncIterable<Uint8Array>;

export interface ProxyRequest {
  readonly method: string;
  /** Path without query, e.g. `/v1/chat/completions`. */
  readonly path: string;
  /** Raw query without the leading `?` ('' when none). */
  readonly query: string;
  readonly headers: Headers;
  /** The request body, read (and size-checked) by the core. */
  readonly body: BodyStream | Uint8Array | undefined;
  /** Correlation id chosen by the entry point (function URL request id, or a fresh UUID). */
  readonly requestId: string;
  /** Aborted when the client goes away; aborts the upstream call. */
  readonly signal: AbortSignal;
  /**
   * Epoch ms by which the answer must be complete (e.g. the Lambda's own deadline less a margin). The core
   * ends the request then as it would at `request_timeout_ms`: 504 before the first byte, an SSE error
   * event after it.
   */
  readonly deadlineAt?: number | undefined;
}

export interface ProxyResponse {
  status: number;
  headers: Record<string, string>;
  body: string | Uint8Array | BodyStream;
}

/** A request the core sends upstream. */
export interface UpstreamRequest {
  readonly url: URL;
  readonly method: string;
  readonly headers: Record<string, string>;
  readonly body: Uint8Array | undefined;
  readonly signal: AbortSignal;
  readonly connectTimeoutMs: number;
  /** Time allowed until the upstream's response headers arrive. */
  readonly firstByteTimeoutMs: number;
  /** The outbound proxy to tunnel through; undefined: direct. */
  readonly proxy?: ProxyEndpoint | undefined;
}

/** The upstream's answer once its headers have arrived; the body is still streaming. */
export interface UpstreamResponse {
  readonly status: number;
  readonly headers: Headers;
  readonly body: BodyStream;
}

/** Raised by an {@link UpstreamClient} when no response headers could be had. */
export class UpstreamError extends Error {
  constructor(
    /** `proxy`: the group's outbound proxy failed (down, refused, auth, handshake timeout). */
    readonly kind: 'connect_timeout' | 'first_byte_timeout' | 'network' | 'proxy' | 'aborted',
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'UpstreamError';
  }
}

/** Sends one request upstream; resolves when the response headers arrive. */
export interface UpstreamClient {
  send(request: UpstreamRequest): Promise<UpstreamResponse>;
}
