/**
 * Reads what a media payload's own header says — an image's size, a recording's duration, a PDF's page
 * count — from base64 text still inside the request body, decoding only the few bytes each header needs
 * (never the whole payload). Any doubt (unknown format, broken header) is `undefined`; callers then
 * estimate from the payload's size.
 */

const BACKSLASH = 0x5c;
const SLASH = 0x2f;
const EQUALS = 0x3d;
/** Most bytes decoded from a payload whose JSON text holds escapes (`\/`), where offsets can't be jumped to. */
const MAX_ESCAPED_READ = 64 * 1024;
/** Most headers (JPEG segments, RIFF chunks, MP4 boxes) walked in one payload. */
const MAX_HOPS = 64;
/** Longest duration believed from a header (a day): a hostile header can't claim more. */
const MAX_SECONDS = 86_400;

/** Base64 digit values, standard and URL-safe alphabets; -1 for anything else. */
const DIGITS = new Int8Array(256).fill(-1);
'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'.split('').forEach((c, v) => {
  DIGITS[c.charCodeAt(0)] = v;
});
DIGITS[0x2d] = 62; // -
DIGITS[0x5f] = 63; // _

/** Base64 text at bytes[start, end) of a JSON body (a string's content, quotes excluded), read lazily. */
export class Base64Data {
  /** Decoded size in bytes (from the text's length: exact unless the text holds escapes). */
  readonly byteLength: number;
  /** For escaped text: the bytes decoded so far from the start, and how many were asked for. */
  private prefix: Uint8Array | undefined;
  private prefixSize = 0;

  constructor(
    private readonly bytes: Uint8Array,
    private readonly start: number,
    private readonly end: number,
    /** The JSON text holds backslash escapes (`\/`, `\n`): offsets can't be computed, only read in order. */
    private readonly escaped: boolean,
  ) {
    let last = end;
    while (last > start && end - last < 2 && bytes[last - 1] === EQUALS) last--;
    this.byteLength = Math.floor(((last - start) * 3) / 4);
  }

  /** Up to `length` decoded bytes from `offset` (fewer where the data ends or stops being base64). */
  read(offset: number, length: number): Uint8Array {
    if (offset < 0 || length <= 0 || offset >= this.byteLength) return new Uint8Array(0);
    if (this.escaped) {
      // Decoded in order from the start, into a prefix that doubles as needed (so hops cost it once).
      const need = offset + length;
      if (need > MAX_ESCAPED_READ) return new Uint8Array(0);
      if (
        this.prefix === undefined ||
        (this.prefix.length < need && this.prefix.length === this.prefixSize)
      ) {
        this.prefixSize = Math.min(Math.max(need, 2 * this.prefixSize, 64), MAX_ESCAPED_READ);
        const out = new Uint8Array(this.prefixSize);
        this.prefix = out.subarray(0, this.decode(this.start, out));
      }
      return this.prefix.subarray(offset, need);
    }
    const skip = offset % 3;
    const from = this.start + ((offset - skip) / 3) * 4;
    const out = new Uint8Array(length + skip);
    return out.subarray(skip, this.decode(from, out));
  }

  /** Decodes from bytes[from] into out until it is full or the base64 ends; returns the bytes written. */
  private decode(from: number, out: Uint8Array): number {
    const { bytes, end } = this;
    let acc = 0;
    let bits = 0;
    let written = 0;
    for (let j = from; j < end && written < out.length; j++) {
      let c = bytes[j]!;
      if (c === BACKSLASH) {
        const e = bytes[++j];
        if (e === 0x6e || e === 0x72 || e === 0x74) continue; // \n \r \t: line breaks in the base64
        if (e !== SLASH) return written;
        c = SLASH;
      }
      const v = DIGITS[c]!;
      if (v < 0) return written;
      acc = ((acc << 6) | v) & 0xffffff;
      bits += 6;
      if (bits >= 8) {
        bits -= 8;
        out[written++] = (acc >> bits) & 0xff;
      }
    }
    return written;
  }
}

const u16be = (b: Uint8Array, i: number) => (b[i]! << 8) | b[i + 1]!;
const u16le = (b: Uint8Array, i: number) => b[i]! | (b[i + 1]! << 8);
const u24le = (b: Uint8Array, i: number) => b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16);
const u32be = (b: Uint8Array, i: number) => ((b[i]! << 24) >>> 0) + (b[i + 1]! << 16) + u16be(b, i + 2);
const u32le = (b: Uint8Array, i: number) => u24le(b, i) + ((b[i + 3]! << 24) >>> 0);
/** Whether b holds the ASCII text `tag` at i. */
function has(b: Uint8Array, i: number, tag: string): boolean {
  if (b.length < i + tag.length) return false;
  for (let k = 0; k < tag.length; k++) if (b[i + k] !== tag.charCodeAt(k)) return false;
  return true;
}

/** Width and height from a PNG, GIF, WebP or JPEG header; undefined for other formats or a broken one. */
export function imageSize(data: Base64Data): [number, number] | undefined {
  const h = data.read(0, 30);
  if (has(h, 1, 'PNG') && has(h, 12, 'IHDR') && h.length >= 24) return [u32be(h, 16), u32be(h, 20)];
  if (has(h, 0, 'GIF8') && h.length >= 10) return [u16le(h, 6), u16le(h, 8)];
  if (has(h, 0, 'RIFF') && has(h, 8, 'WEBP') && h.length >= 30) {
    if (has(h, 12, 'VP8 ')) return [u16le(h, 26) & 0x3fff, u16le(h, 28) & 0x3fff];
    if (has(h, 12, 'VP8L')) {
      const bits = u32le(h, 21);
      return [(bits & 0x3fff) + 1, ((bits >>> 14) & 0x3fff) + 1];
    }
    if (has(h, 12, 'VP8X')) return [u24le(h, 24) + 1, u24le(h, 27) + 1];
    return undefined;
  }
  if (h[0] === 0xff && h[1] === 0xd8) return jpegSize(data);
  return undefined;
}

/** A JPEG's size from its start-of-frame segment, found by hopping over the segments before it (EXIF…). */
function jpegSize(data: Base64Data): [number, number] | undefined {
  let o = 2;
  for (let hop = 0; hop < MAX_HOPS; hop++) {
    const s = data.read(o, 9);
    if (s.length < 4 || s[0] !== 0xff) return undefined;
    const marker = s[1]!;
    if (marker === 0xff) {
      o++; // fill byte
      continue;
    }
    const sof = marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc;
    if (sof) return s.length < 9 ? undefined : [u16be(s, 7), u16be(s, 5)];
    o += (marker >= 0xd0 && marker <= 0xd9) || marker === 0x01 ? 2 : 2 + u16be(s, 2);
  }
  return undefined;
}

/** A WAV recording's duration from its `fmt ` (byte rate) and `data` chunks. */
export function wavSeconds(data: Base64Data): number | undefined {
  const h = data.read(0, 12);
  if (!has(h, 0, 'RIFF') || !has(h, 8, 'WAVE')) return undefined;
  let byteRate = 0;
  let samples = data.byteLength - 44;
  for (let o = 12, hop = 0; hop < MAX_HOPS && o + 8 <= data.byteLength; hop++) {
    const c = data.read(o, 20);
    if (c.length < 8) break;
    const size = u32le(c, 4);
    if (has(c, 0, 'fmt ') && c.length >= 20) byteRate = u32le(c, 16);
    if (has(c, 0, 'data')) {
      samples = Math.min(size, data.byteLength - o - 8);
      break;
    }
    o += 8 + size + (size & 1);
  }
  // Below 8 kHz 8-bit mono (8000 B/s) a header is more likely broken than true.
  return byteRate >= 1000 ? Math.min(Math.max(samples, 0) / byteRate, MAX_SECONDS) : undefined;
}

/** An MP4 / QuickTime / 3GP file's duration from its movie header (`moov` › `mvhd`), hopping over `mdat`. */
export function mp4Seconds(data: Base64Data): number | undefined {
  if (!has(data.read(4, 4), 0, 'ftyp')) return undefined;
  let hops = 0;
  const walk = (from: number, to: number, inMoov: boolean): number | undefined => {
    for (let o = from; o + 8 <= to && hops < MAX_HOPS; hops++) {
      const b = data.read(o, 16);
      if (b.length < 8) return undefined;
      let size = u32be(b, 0);
      let header = 8;
      if (size === 1 && b.length >= 16) {
        size = u32be(b, 8) * 2 ** 32 + u32be(b, 12);
        header = 16;
      } else if (size === 0) size = to - o;
      if (size < header) return undefined;
      if (!inMoov && has(b, 4, 'moov')) return walk(o + header, Math.min(o + size, to), true);
      if (inMoov && has(b, 4, 'mvhd')) return mvhdSeconds(data.read(o + header, 32));
      o += size;
    }
    return undefined;
  };
  return walk(0, data.byteLength, false);
}

function mvhdSeconds(b: Uint8Array): number | undefined {
  if (b.length < 32) return undefined;
  const v1 = b[0] === 1;
  const timescale = u32be(b, v1 ? 20 : 12);
  const duration = v1 ? u32be(b, 24) * 2 ** 32 + u32be(b, 28) : u32be(b, 16);
  if (timescale === 0 || duration === 0xffffffff) return undefined;
  return Math.min(duration / timescale, MAX_SECONDS);
}

/** A linearized PDF's page count (`/Linearized … /N <pages>`, in its first kilobyte). */
export function pdfPages(data: Base64Data): number | undefined {
  const h = data.read(0, 1024);
  if (!has(h, 0, '%PDF')) return undefined;
  const text = String.fromCharCode(...h);
  const pages = /\/Linearized[^>]*?\/N\s*(\d{1,7})/.exec(text)?.[1];
  return pages === undefined ? undefined : Number(pages);
}

/** What a payload's first bytes say it is, for data sent without a usable MIME type. */
export function sniff(data: Base64Data): 'image' | 'audio' | 'video' | 'pdf' | undefined {
  const h = data.read(0, 12);
  if (has(h, 1, 'PNG') || has(h, 0, 'GIF8') || (h[0] === 0xff && h[1] === 0xd8)) return 'image';
  if (has(h, 0, 'RIFF')) return has(h, 8, 'WEBP') ? 'image' : has(h, 8, 'WAVE') ? 'audio' : undefined;
  if (
    has(h, 0, 'ID3') ||
    has(h, 0, 'OggS') ||
    has(h, 0, 'fLaC') ||
    (h[0] === 0xff && (h[1]! & 0xe0) === 0xe0)
  )
    return 'audio';
  if (has(h, 4, 'ftyp')) return 'video';
  if (has(h, 0, '%PDF')) return 'pdf';
  return undefined;
}
