import { describe, expect, it } from 'vitest';
import { BodyTooLargeError, readBody, readText } from '../../lambda/core/body.js';

async function* chunks(...parts: string[]): AsyncGenerator<Uint8Array> {
  for (const p of parts) yield Buffer.from(p);
}

describe('Function: readBody', () => {
  it('joins chunks up to the limit', async () => {
    expect(Buffer.from(await readBody(chunks('ab', 'cd'), 4)).toString()).toBe('abcd');
  });

  it('stops at the first chunk past the limit', async () => {
    let pulled = 0;
    async function* counted(): AsyncGenerator<Uint8Array> {
      for (let i = 0; i < 10; i++) {
        pulled++;
        yield Buffer.alloc(3);
      }
    }
    await expect(readBody(counted(), 7)).rejects.toBeInstanceOf(BodyTooLargeError);
    expect(pulled).toBe(3);
  });

  it('checks a body given whole', async () => {
    await expect(readBody(Buffer.alloc(5), 4)).rejects.toBeInstanceOf(BodyTooLargeError);
    expect((await readBody(undefined, 4)).byteLength).toBe(0);
  });
});

describe('Function: readText', () => {
  it('returns the text within the limit and nothing at all past it', async () => {
    expect(await readText(chunks('{"error":', '{}}'), 100)).toBe('{"error":{}}');
    expect(await readText(chunks('0123456789', 'abc'), 12)).toBeUndefined();
  });
});
