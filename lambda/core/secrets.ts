import { createHash, timingSafeEqual } from 'node:crypto';

/** A key's public id: the first 16 hex digits of its SHA-256. Safe to log, store and show. */
export function keyId(apiKey: string): string {
  return createHash('sha256').update(apiKey).digest('hex').slice(0, 16);
}

export function sha256(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

/** Checks presented client tokens against configured ones by hash, in constant time per token. */
export class TokenVerifier {
  private readonly hashes: readonly Buffer[];

  constructor(tokens: readonly string[]) {
    this.hashes = tokens.map(sha256);
  }

  get enabled(): boolean {
    return this.hashes.length > 0;
  }

  verify(presented: string | undefined): boolean {
    if (presented === undefined || presented === '') return false;
    const hash = sha256(presented);
    let ok = false;
    // Compare against every configured hash so timing doesn't reveal which one matched.
    for (const h of this.hashes) ok = timingSafeEqual(h, hash) || ok;
    return ok;
  }
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * Removes key material from text that came from upstream (error bodies can quote the key, as
 * Gemini's "Consumer 'api_key:…' has been suspended" does): every configured secret, anything
 * shaped like a Google API key, and `api_key:…` references.
 */
export class Scrubber {
  private readonly pattern: RegExp;

  constructor(secrets: readonly string[]) {
    const known = [...secrets].sort((a, b) => b.length - a.length).map(escapeRegExp);
    const generic = ['AIza[0-9A-Za-z_-]{20,}', 'api_key:[^\'"\\s,}]+'];
    this.pattern = new RegExp([...known, ...generic].join('|'), 'g');
  }

  scrub(text: string): string {
    return text.replace(this.pattern, '[redacted]');
  }
}
