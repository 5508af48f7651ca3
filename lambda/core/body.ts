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

/**
 * Reads a body as text (for upstream error bodies, which are small). Returns undefined when it is larger
 * than `limit`: a cut-off body could end in part of a key that no scrubber would recognise.
 */
export async function readText(body: BodyStream, limit = 1024 * 1024): Promise<string | undefined> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.byteLength;
    if (size <= limit) chunks.push(chunk);
  }
  return size > limit ? undefined : Buffer.concat(chunks).toString('utf8');
}
