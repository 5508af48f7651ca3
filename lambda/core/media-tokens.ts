/**
 * What one media item (an image, a recording, a video, a PDF, a file reference) costs in Gemini input
 * tokens, by Gemini's documented per-item rates. The rates, and the assumptions used where a payload's
 * header can't tell, are listed in token-estimate.ts.
 */
import { Base64Data, imageSize, mp4Seconds, pdfPages, sniff, wavSeconds } from './media-headers.js';

/** One image of at most 384×384 px, or one 768×768 tile of a larger one, or one PDF page. */
export const IMAGE_TOKENS = 258;
export const AUDIO_TOKENS_PER_SECOND = 32;
export const VIDEO_TOKENS_PER_SECOND = 263;
/** Assumed rates where the header doesn't tell: 128 kbit/s audio, 2 Mbit/s video, 50 kB per PDF page. */
export const ASSUMED_AUDIO_BYTES_PER_SECOND = 16_000;
export const ASSUMED_VIDEO_BYTES_PER_SECOND = 250_000;
export const ASSUMED_PDF_BYTES_PER_PAGE = 50_000;
/** Gemini reads at most 1000 pages of a PDF. */
const MAX_PDF_PAGES = 1000;
/** A file referenced by URI or id whose size is unknown, unless it is an image (one image's cost). */
export const FILE_REFERENCE_TOKENS = 10 * IMAGE_TOKENS;
/** An image side beyond this (only a hostile header claims one) is taken as this. */
const MAX_IMAGE_SIDE = 16_384;

export type MediaKind = 'image' | 'audio' | 'video' | 'pdf' | 'text' | undefined;

/** Which costing rule a MIME type gets; undefined when the payload's own bytes should tell. */
export function mimeKind(mime: string): MediaKind {
  const type = mime.trim().toLowerCase();
  if (type.startsWith('image/')) return 'image';
  if (type.startsWith('audio/')) return 'audio';
  if (type.startsWith('video/')) return 'video';
  if (type.startsWith('application/pdf')) return 'pdf';
  if (type.startsWith('text/') || /^application\/(json|xml|(x-)?javascript|x-python|rtf)\b/.test(type))
    return 'text';
  return undefined;
}

/** Tokens of an image w×h px: 258 when both sides are ≤ 384 px, else 258 per 768×768 tile. */
export function imageTokens(size: [number, number] | undefined): number {
  if (size === undefined || !(size[0] > 0 && size[1] > 0)) return IMAGE_TOKENS;
  const [w, h] = size.map((side) => Math.min(side, MAX_IMAGE_SIDE)) as [number, number];
  if (w <= 384 && h <= 384) return IMAGE_TOKENS;
  return Math.ceil(w / 768) * Math.ceil(h / 768) * IMAGE_TOKENS;
}

/** Tokens of a base64 payload of the given kind (sniffed from its first bytes when the kind is unknown). */
export function payloadTokens(kind: MediaKind, data: Base64Data): number {
  switch (kind ?? sniff(data) ?? 'text') {
    case 'image':
      return imageTokens(imageSize(data));
    case 'audio': {
      const seconds =
        wavSeconds(data) ?? mp4Seconds(data) ?? data.byteLength / ASSUMED_AUDIO_BYTES_PER_SECOND;
      return Math.ceil(seconds * AUDIO_TOKENS_PER_SECOND);
    }
    case 'video': {
      const seconds = mp4Seconds(data) ?? data.byteLength / ASSUMED_VIDEO_BYTES_PER_SECOND;
      return Math.ceil(seconds * VIDEO_TOKENS_PER_SECOND);
    }
    case 'pdf': {
      const pages = pdfPages(data) ?? Math.ceil(data.byteLength / ASSUMED_PDF_BYTES_PER_PAGE);
      return Math.min(Math.max(pages, 1), MAX_PDF_PAGES) * IMAGE_TOKENS;
    }
    default:
      return Math.ceil(data.byteLength / 4);
  }
}

/** Tokens of a file referenced by URI or id, of a known kind or not. */
export function fileReferenceTokens(kind: MediaKind): number {
  return kind === 'image' ? IMAGE_TOKENS : FILE_REFERENCE_TOKENS;
}

/**
 * The first `max` characters of the JSON string content at bytes[start, end), with `\/` unescaped, and
 * where each ends in the body (so a data URL's payload can be found after its comma). Other escapes end it.
 */
export function leadingText(bytes: Uint8Array, start: number, end: number, max: number): [string, number[]] {
  let text = '';
  const ends: number[] = [];
  for (let j = start; j < end && text.length < max; j++) {
    let c = bytes[j]!;
    if (c === 0x5c) {
      if (bytes[j + 1] !== 0x2f) break;
      c = 0x2f;
      j++;
    }
    text += String.fromCharCode(c);
    ends.push(j + 1);
  }
  return [text, ends];
}

/**
 * Tokens of a URL given for an image or a file: a `data:` URL by its MIME type and base64 payload. Any
 * other URL is an image of unknown size (`fallback: 'image'`) or a file reference; a file given as bare
 * base64 (no URL at all) is costed by its own bytes.
 */
export function urlTokens(
  bytes: Uint8Array,
  start: number,
  end: number,
  escaped: boolean,
  fallback: 'image' | 'data',
): number {
  const [head, ends] = leadingText(bytes, start, end, 256);
  const comma = head.indexOf(',');
  if (/^data:/i.test(head) && comma > 0) {
    const meta = head.slice(5, comma);
    const kind = mimeKind(meta.split(';')[0]!);
    const payload = ends[comma]!;
    if (/;base64$/i.test(meta)) return payloadTokens(kind, new Base64Data(bytes, payload, end, escaped));
    return kind === 'image' ? IMAGE_TOKENS : Math.ceil((end - payload) / 4);
  }
  if (fallback === 'image') return IMAGE_TOKENS;
  if (/^[a-z][a-z0-9+.-]*:/i.test(head)) return FILE_REFERENCE_TOKENS;
  return payloadTokens(undefined, new Base64Data(bytes, start, end, escaped));
}
