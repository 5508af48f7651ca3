import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';

/**
 * Temporary directories for a block of tests. Call it at the top of a test file or `describe` block; the
 * function it returns makes a new directory under the OS temp dir (`<prefix>XXXXXX`), in a test or a
 * `beforeAll` alike, and every one it made is removed with its contents once the block's tests are done.
 */
export function tempDirs(): (prefix: string) => string {
  const made: string[] = [];
  afterAll(() => {
    for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
  });
  return (prefix) => {
    const dir = mkdtempSync(join(tmpdir(), prefix));
    made.push(dir);
    return dir;
  };
}
