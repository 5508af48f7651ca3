/** How the CLI shows things: masked keys, times, plain-text tables, JSON. Never colour: output is plain text. */
import type { OutStream } from './io.js';

/**
 * A key as the operator may see it: its first and last 4 characters (`AIza…Qk7x`), fewer for a short key
 * (a key under 8 characters shows none), so that at least half of it is always hidden.
 */
export function maskKey(key: string): string {
  const shown = key.length >= 16 ? 4 : key.length >= 12 ? 3 : key.length >= 8 ? 2 : 0;
  return shown === 0 ? '…' : `${key.slice(0, shown)}…${key.slice(-shown)}`;
}

/** An instant as ISO 8601 (UTC, seconds), for JSON. */
export function isoTime(epochMs: number): string {
  return new Date(epochMs).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** How long ago (`5s ago`, `3m ago`) or how far ahead (`in 2h`) an instant is, for tables. */
export function relativeTime(epochMs: number, now: number): string {
  const delta = Math.abs(epochMs - now);
  const unit =
    delta < 60_000
      ? `${Math.round(delta / 1000)}s`
      : delta < 3_600_000
        ? `${Math.round(delta / 60_000)}m`
        : delta < 172_800_000
          ? `${Math.round(delta / 3_600_000)}h`
          : `${Math.round(delta / 86_400_000)}d`;
  return epochMs >= now ? `in ${unit}` : `${unit} ago`;
}

/** Writes a value as pretty JSON (what `--json` prints: one document per command). */
export function printJson(out: OutStream, value: unknown): void {
  out.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** Writes rows as a plain-text table: a header line, then one line per row, columns padded to fit. */
export function printTable(
  out: OutStream,
  header: readonly string[],
  rows: readonly (readonly string[])[],
): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  out.write(`${[line(header), ...rows.map(line)].join('\n')}\n`);
}
