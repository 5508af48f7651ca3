import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { keyId, Scrubber, TokenVerifier } from '../../lambda/core/credentials.js';

describe('Function: keyId', () => {
  it('is a stable 16-hex hash that does not contain the key', () => {
    const id = keyId('fake-key-one');
    expect(id).toMatch(/^[0-9a-f]{16}$/);
    expect(keyId('fake-key-one')).toBe(id);
    expect(keyId('fake-key-two')).not.toBe(id);
  });
});

describe('Class: TokenVerifier', () => {
  it('accepts configured tokens only', () => {
    const verifier = new TokenVerifier([
      { token: 'alpha-token', rpm: undefined },
      { token: 'beta-token', rpm: 5 },
    ]);
    expect(verifier.verify('alpha-token')).toEqual({ clientId: keyId('alpha-token'), rpm: undefined });
    expect(verifier.verify('beta-token')).toEqual({ clientId: keyId('beta-token'), rpm: 5 });
    expect(verifier.verify('alpha-token ')).toBeUndefined();
    expect(verifier.verify('')).toBeUndefined();
    expect(verifier.verify(undefined)).toBeUndefined();
  });

  it('accepts a token configured only by its SHA-256', () => {
    const hex = createHash('sha256').update('stored-as-hash').digest('hex');
    const verifier = new TokenVerifier([{ sha256: hex.toUpperCase(), rpm: 7 }]);
    expect(verifier.verify('stored-as-hash')).toEqual({ clientId: keyId('stored-as-hash'), rpm: 7 });
    expect(verifier.verify(hex)).toBeUndefined();
  });

  it('is disabled without tokens', () => {
    expect(new TokenVerifier([]).enabled).toBe(false);
  });
});

describe('Class: Scrubber', () => {
  it('removes configured secrets, key-shaped strings and api_key references', () => {
    const scrubber = new Scrubber(['my-secret-key', 'tok.en+1']);
    const text = `a my-secret-key b tok.en+1 c AIzaSyA-1234567890abcdefghijklmnopqrstu d 'api_key:whatever' e`;
    const out = scrubber.scrub(text);
    expect(out).not.toContain('my-secret-key');
    expect(out).not.toContain('tok.en+1');
    expect(out).not.toContain('AIzaSy');
    expect(out).not.toContain('whatever');
    expect(out).toBe("a [redacted] b [redacted] c [redacted] d '[redacted]' e");
  });
});
