import { createHash, timingSafeEqual } from 'node:crypto';

/** A key's public id: the first 16 hex digits of its SHA-256. Safe to log, store and show. */
export function keyId(apiKey: string): string {
  return createHash('sha256').update(apiKey).digest('hex').slice(0, 16);
}

export function sha256(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

/** A configured client: the token's hash (safe to store and log) and its optional per-minute limit. */
export interface ClientIdentity {
  readonly clientId: string;
  /** The name the operator gave the token, if any: what logs and usage call the client. */
  readonly name: string | undefined;
  readonly rpm: number | undefined;
}

/** Who sent a request, as logs and usage name it: never the token. */
export type Caller = Pick<ClientIdentity, 'clientId' | 'name'>;

/** Checks presented client tokens against configured ones by hash, in constant time per token. */
export class TokenVerifier {
  private readonly entries: ReadonlyArray<{ hash: Buffer; identity: ClientIdentity }>;

  /** Each token given plain or as its SHA-256 (hex). */
  constructor(
    tokens: ReadonlyArray<{
      token?: string | undefined;
      sha256?: string | undefined;
      name?: string | undefined;
      rpm: number | undefined;
    }>,
  ) {
    this.entries = tokens.map(({ token, sha256: hex, name, rpm }) => {
      const hash = token === undefined ? Buffer.from(hex ?? '', 'hex') : sha256(token);
      // The client id is the same hash prefix a key id uses: safe to store and log.
      return { hash, identity: { clientId: hash.toString('hex').slice(0, 16), name, rpm } };
    });
  }

  get enabled(): boolean {
    return this.entries.length > 0;
  }

  /** The matching client, or undefined. */
  verify(presented: string | undefined): ClientIdentity | undefined {
    if (presented === undefined || presented === '') return undefined;
    const hash = sha256(presented);
    let match: ClientIdentity | undefined;
    // Compare against every configured hash so timing doesn't reveal which one matched.
    for (const e of this.entries) if (timingSafeEqual(e.hash, hash)) match = e.identity;
    return match;
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
