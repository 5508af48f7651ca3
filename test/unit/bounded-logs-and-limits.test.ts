import { describe, expect, it } from 'vitest';
import { JsonLogger, MAX_FIELD_CHARS } from '../../lambda/adapters/logger.js';
import { parseConfig } from '../../lambda/core/config/parse.js';

describe('Class: JsonLogger (field cap)', () => {
  it('cuts string fields longer than the cap, saying how much was cut; leaves the rest alone', () => {
    // Prepare
    const lines: string[] = [];
    const logger = new JsonLogger('info', (l) => lines.push(l));
    const path = `/${'a'.repeat(16 * 1024)}`;
    const fields = { path, method: 'POST', status: 404, ok: false, none: null };

    // Act
    logger.info('request', fields);

    // Assess
    const line = JSON.parse(lines[0]!) as Record<string, unknown>;
    expect(lines[0]!.length).toBeLessThan(MAX_FIELD_CHARS + 300);
    expect(line.path).toBe(`${path.slice(0, MAX_FIELD_CHARS)}…[+${path.length - MAX_FIELD_CHARS} chars]`);
    expect(line).toMatchObject({ method: 'POST', status: 404, ok: false, none: null });
    expect(fields.path).toBe(path); // the caller's object is not changed
  });

  it('keeps a field of exactly the cap whole', () => {
    const lines: string[] = [];
    const value = 'b'.repeat(MAX_FIELD_CHARS);
    new JsonLogger('info', (l) => lines.push(l)).warn('x', { value });
    expect((JSON.parse(lines[0]!) as { value: string }).value).toBe(value);
  });
});

describe('Function: parseConfig (server bounds)', () => {
  const base = { client_tokens: ['t'], groups: [{ name: 'a', api_keys: ['k'] }] };

  it('bounds connections by default', () => {
    expect(parseConfig(base).server).toMatchObject({
      header_timeout_ms: 10_000,
      request_receive_timeout_ms: 30_000,
      idle_timeout_ms: 65_000,
      write_stall_timeout_ms: 60_000,
    });
  });

  it('refuses a header timeout longer than the receive timeout, and bounds that are not positive', () => {
    expect(() =>
      parseConfig({ ...base, server: { header_timeout_ms: 5000, request_receive_timeout_ms: 1000 } }),
    ).toThrow('server.header_timeout_ms: expected at most request_receive_timeout_ms');
    expect(() => parseConfig({ ...base, server: { write_stall_timeout_ms: 0 } })).toThrow(
      'server.write_stall_timeout_ms: expected a positive number',
    );
  });
});
