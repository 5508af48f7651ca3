/**
 * Client tokens in a list (the local config's `client_tokens`, the tokens secret's `tokens`): made, listed
 * and revoked by name or id. Only a new token's SHA-256 is ever stored; a token's id is the first 16 hex
 * digits of that hash, the client id the proxy logs (`TokenVerifier`).
 */
import { createHash, randomBytes } from 'node:crypto';
import { type Document, isMap, isScalar, type YAMLSeq } from 'yaml';
import { CliError } from './io.js';

/** A configured token as the CLI shows it: never the token itself. */
export interface TokenEntry {
  readonly id: string;
  readonly name: string | undefined;
  readonly rpm: number | undefined;
  readonly created: string | undefined;
  /** `plain`: the token itself is in the configuration (local files may do that); `sha256`: only its hash. */
  readonly stored: 'plain' | 'sha256';
}

const hex = (text: string) => createHash('sha256').update(text).digest('hex');

/** A new client token (256 random bits) and its SHA-256, the only part stored. */
export function newToken(): { token: string; sha256: string } {
  const token = `gp-${randomBytes(32).toString('base64url')}`;
  return { token, sha256: hex(token) };
}

function entryOf(item: unknown): TokenEntry | undefined {
  if (isScalar(item)) {
    return typeof item.value === 'string'
      ? {
          id: hex(item.value).slice(0, 16),
          name: undefined,
          rpm: undefined,
          created: undefined,
          stored: 'plain',
        }
      : undefined;
  }
  if (!isMap(item)) return undefined;
  const token = item.get('token');
  const sha256 = item.get('sha256');
  const hash =
    typeof token === 'string' ? hex(token) : typeof sha256 === 'string' ? sha256.toLowerCase() : '';
  if (hash === '') return undefined;
  const name = item.get('name');
  const rpm = item.get('rpm');
  const created = item.get('created');
  return {
    id: hash.slice(0, 16),
    name: typeof name === 'string' ? name : undefined,
    rpm: typeof rpm === 'number' ? rpm : undefined,
    created: typeof created === 'string' ? created : undefined,
    stored: typeof token === 'string' ? 'plain' : 'sha256',
  };
}

/** Every configured token, in order. */
export function listTokens(seq: YAMLSeq): TokenEntry[] {
  return seq.items.flatMap((item) => entryOf(item) ?? []);
}

/** Appends `{ sha256, name, rpm, created }`; refuses a name already given to another token. */
export function addTokenHash(
  doc: Document,
  seq: YAMLSeq,
  entry: { sha256: string; name: string; rpm: number | undefined; created: string },
): void {
  if (listTokens(seq).some((t) => t.name === entry.name))
    throw new CliError(`a token named ${entry.name} already exists: revoke it first, or choose another name`);
  const node = doc.createNode(
    entry.rpm === undefined
      ? { name: entry.name, sha256: entry.sha256, created: entry.created }
      : { name: entry.name, sha256: entry.sha256, rpm: entry.rpm, created: entry.created },
  );
  seq.add(node);
}

/** Removes the token with this name or id (a unique id prefix of 6+ digits will do); returns what it removed. */
export function removeToken(seq: YAMLSeq, nameOrId: string): TokenEntry {
  const wanted = nameOrId.toLowerCase();
  const matches = seq.items
    .map((item, index) => ({ index, entry: entryOf(item) }))
    .filter(
      ({ entry }) =>
        entry !== undefined &&
        (entry.name === nameOrId ||
          entry.id === wanted ||
          (wanted.length >= 6 && entry.id.startsWith(wanted))),
    );
  // What was given is not echoed: it may be a token pasted by mistake.
  if (matches.length === 0) throw new CliError('no token has that name or id (see `tokens list`)');
  if (matches.length > 1)
    throw new CliError(`that id prefix matches ${matches.length} tokens: give the whole 16-digit id`);
  const [{ index, entry }] = matches as [{ index: number; entry: TokenEntry }];
  seq.items.splice(index, 1);
  return entry;
}
