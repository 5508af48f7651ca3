/** The `usage` command's report: rows read from a usage source, as JSON or a plain table. */
import type { UsageSource } from '../core/usage-ledger.js';
import { readUsage, type UsageDimension, type UsageRow } from '../core/usage-rows.js';

export interface UsageCommandOptions {
  /** Pacific days, today included. */
  readonly days: number;
  readonly by: UsageDimension;
  /** Print the rows as JSON rather than a table. */
  readonly json: boolean;
}

const HEADINGS: Record<UsageDimension, string> = { client: 'CLIENT', key: 'KEY ID', model: 'MODEL' };

/** One row's cell of the dimension: a named client also shows its id. */
function what(row: UsageRow, by: UsageDimension): string {
  if (by === 'client') return row.client === row.clientId ? row.client! : `${row.client} (${row.clientId})`;
  return (by === 'key' ? row.key : row.model) ?? '';
}

/**
 * The rows as a plain-text table (no colour: it may go to a file or a pipe), numbers right-aligned, with a
 * total line when there is more than one row.
 */
export function formatUsageTable(rows: readonly UsageRow[], by: UsageDimension): string {
  const head = ['DAY', HEADINGS[by], 'REQUESTS', 'ERRORS', 'INPUT TOKENS', 'OUTPUT TOKENS'];
  const cells = rows.map((r) => [
    r.day,
    what(r, by),
    ...[r.requests, r.errors, r.inputTokens, r.outputTokens].map(String),
  ]);
  if (rows.length > 1) {
    const sum = (f: (r: UsageRow) => number) => String(rows.reduce((n, r) => n + f(r), 0));
    cells.push([
      'total',
      '',
      sum((r) => r.requests),
      sum((r) => r.errors),
      sum((r) => r.inputTokens),
      sum((r) => r.outputTokens),
    ]);
  }
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: readonly string[]) =>
    c
      .map((cell, i) => (i < 2 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(head), ...cells.map(line)].join('\n');
}

/**
 * What `gemini-proxy usage` prints: the last `days` Pacific days of usage by client, key or model, as JSON
 * (an array of rows) or a table; a sentence when nothing was counted.
 */
export async function usageCommand(opts: UsageCommandOptions, source: UsageSource): Promise<string> {
  const rows = await readUsage(source, { days: opts.days, by: opts.by, now: Date.now() });
  if (opts.json) return JSON.stringify(rows, null, 2);
  if (rows.length === 0) {
    return `No usage counted in the last ${opts.days} day${opts.days === 1 ? '' : 's'} (Pacific time).`;
  }
  return formatUsageTable(rows, opts.by);
}
