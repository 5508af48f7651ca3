import type { BodyStream } from './http.js';

export class BodyTooLargeError extends Error {
  constructor(readonly limit: number) {
    super(`request body exceeds ${limit} bytes`);
    this.name = 'BodyTooLargeError';
  }
}

/**
 * Reads a whole body, counting bytes as they arrive: a lying or absent Content-Length can't get
 * past `limit`. Stops reading (and throws {@link BodyTooLargeError}) as soon as the limit is passed.
 */
export async function readBody(
  body: BodyStream | Uint8Array | undefined,
  limit: number,
): Promise<Uint8Array> {
  if (body === undefined) return new Uint8Array(0);
  if (body instanceof Uint8Array) {
    if (body.byteLength > limit) throw new BodyTooLargeError(limit);
    return body;
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.byteLength;
    if (size > limit) throw new BodyTooLargeError(limit);
    chunks.push(chunk);
  }
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
}

/** Reads up to `limit` bytes of a body as text (for upstream error bodies), dropping the rest. */
export async function readText(body: BodyStream, limit = 1024 * 1024): Promise<string> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of body) {
    if (size < limit) chunks.push(chunk);
    size += chunk.byteLength;
  }
  return Buffer.concat(chunks).subarray(0, limit).toString('utf8');
}
