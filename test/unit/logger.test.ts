import { afterEach, describe, expect, it, vi } from 'vitest';
import { CoalescingStdout, JsonLogger, parseLogLevel } from '../../lambda/adapters/logger.js';

describe('Class: CoalescingStdout', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('writes the lines of one event-loop turn in a single write, and flush writes at once', async () => {
    // Prepare
    const writes: string[] = [];
    vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
      writes.push(String(chunk));
      return true;
    });
    const out = new CoalescingStdout();

    // Act
    out.write('a\n');
    out.write('b\n');
    out.write('c\n');
    const beforeTurn = writes.length;
    await new Promise((r) => setImmediate(r));
    out.write('d\n');
    out.flush();

    // Assess
    expect(beforeTurn).toBe(0);
    expect(writes).toEqual(['a\nb\nc\n', 'd\n']);
  });
});

describe('Class: JsonLogger', () => {
  it('writes JSON lines at or above its level only', () => {
    const lines: string[] = [];
    const logger = new JsonLogger(parseLogLevel('warn'), (l) => lines.push(l), { function: 'test' });
    logger.info('quiet');
    logger.warn('loud', { keyId: 'abc' });
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({
      level: 'warn',
      message: 'loud',
      keyId: 'abc',
      function: 'test',
    });
    expect(() => parseLogLevel('verbose')).toThrow(/LOG_LEVEL/);
  });
});
