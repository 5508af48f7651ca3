/** `keys list | add | remove`, and the switch commands of `key-switch.ts`. */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { keyId } from '../../core/credentials.js';
import { addKeys, type ConfiguredKeyEntry, listConfiguredKeys, removeKeys } from '../config-edit.js';
import { CliError, type CliIo } from '../io.js';
import type { KeyState } from '../key-table.js';
import type { CliContext } from '../main.js';
import { isoTime, maskKey, printJson, printTable, relativeTime } from '../output.js';
import type { Target } from '../target.js';
import { usageRows } from '../usage-source.js';
import { findKeys } from './key-ids.js';
import { registerKeySwitches } from './key-switch.js';

/** A key as `keys list --json` prints it. */
export interface KeyRow {
  readonly group: string;
  readonly keyId: string;
  /** Masked: `AIza…Qk7x`. */
  readonly key: string;
  readonly project: string | null;
  /** `active`, `invalid` or `disabled`; `unknown` without shared state (a local config on `store: memory`). */
  readonly status: string;
  /** Why: Gemini's reason for an invalid key, the operator's note for a disabled one. */
  readonly reason: string | null;
  /** Where a disable is kept: `table` (shared state), `config` (the key's `disabled: true`). */
  readonly disabledIn: 'table' | 'config' | null;
  /** Cooldowns and parks still running (`cause: unavailable` is a park). */
  readonly cooling: ReadonlyArray<{ model: string; cause: string; until: string }>;
  readonly lastCheck: { outcome: string; at: string } | null;
  /** This Pacific day's usage of the key (every client, every model); null without shared state. */
  readonly today: { requests: number; errors: number; inputTokens: number; outputTokens: number } | null;
}

/** Every configured key with what the shared state says of it. */
export async function keyRows(target: Target, now: number, group?: string): Promise<KeyRow[]> {
  const entries = listConfiguredKeys(await target.readKeys()).filter(
    (e) => group === undefined || e.group === group,
  );
  const table = await target.state();
  const states = new Map<string, Map<string, KeyState>>();
  if (table !== undefined) {
    for (const g of new Set(entries.map((e) => e.group))) states.set(g, await table.group(g, now));
  }
  const usage = new Map((await usageRows(target, 'key', 1, now))?.map((u) => [u.key, u]));
  // null: the table knows nothing of the key (active, not cooling); undefined: there is no table.
  return entries.map((e) => {
    const u = usage.get(e.keyId);
    const today =
      table === undefined
        ? null
        : {
            requests: u?.requests ?? 0,
            errors: u?.errors ?? 0,
            inputTokens: u?.inputTokens ?? 0,
            outputTokens: u?.outputTokens ?? 0,
          };
    return {
      ...row(e, table === undefined ? undefined : (states.get(e.group)?.get(e.keyId) ?? null)),
      today,
    };
  });
}

function row(e: ConfiguredKeyEntry, state: KeyState | undefined | null): Omit<KeyRow, 'today'> {
  const known = state ?? undefined;
  const tableDisabled = known?.status === 'disabled';
  const status = e.disabled ? 'disabled' : state === undefined ? 'unknown' : (known?.status ?? 'active');
  return {
    group: e.group,
    keyId: e.keyId,
    key: maskKey(e.apiKey),
    project: e.project ?? null,
    status,
    reason: known?.reason ?? known?.note ?? null,
    disabledIn: tableDisabled ? 'table' : e.disabled ? 'config' : null,
    cooling: (known?.cooldowns ?? []).map((c) => ({
      model: c.model || '(any)',
      cause: c.cause,
      until: isoTime(c.until),
    })),
    lastCheck:
      known?.lastCheck === undefined
        ? null
        : { outcome: known.lastCheck.outcome, at: isoTime(known.lastCheck.at) },
  };
}

function printKeys(io: CliIo, rows: readonly KeyRow[], now: number): void {
  printTable(
    io.stdout,
    ['GROUP', 'KEY ID', 'KEY', 'PROJECT', 'STATUS', 'REASON', 'COOLING', 'CHECKED', 'TODAY'],
    rows.map((r) => [
      r.group,
      r.keyId,
      r.key,
      r.project ?? '-',
      r.disabledIn === 'config' ? 'disabled (config)' : r.status,
      r.reason ?? '-',
      r.cooling.map((c) => `${c.model} ${c.cause} ${relativeTime(Date.parse(c.until), now)}`).join('; ') ||
        '-',
      r.lastCheck === null ? '-' : `${r.lastCheck.outcome} ${relativeTime(Date.parse(r.lastCheck.at), now)}`,
      r.today === null ? '-' : `${r.today.requests} req, ${r.today.inputTokens + r.today.outputTokens} tok`,
    ]),
  );
}

/** Keys read from stdin or a file: one per line; blank lines and `#` comments skipped; never echoed. */
async function readKeys(io: CliIo, file: string | undefined): Promise<string[]> {
  let text: string;
  if (file !== undefined) {
    try {
      text = readFileSync(resolve(io.cwd, file), 'utf8');
    } catch (err) {
      throw new CliError(`cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    }
  } else {
    if (io.stdinIsTTY) io.stderr.write('Paste the keys, one per line, then press Ctrl-D:\n');
    text = await io.readStdin();
  }
  const keys: string[] = [];
  for (const [i, line] of text.split(/\r?\n/).entries()) {
    const key = line.trim();
    if (key === '' || key.startsWith('#')) continue;
    if (!/^[\x21-\x7e]{8,256}$/.test(key))
      throw new CliError(
        `line ${i + 1} is not a key (expected 8-256 printable characters without spaces); nothing added`,
      );
    keys.push(key);
  }
  if (keys.length === 0) throw new CliError('no keys given (one per line on stdin, or --file)');
  return keys;
}

export function registerKeys(program: Command, cli: CliContext): void {
  const keys = program
    .command('keys')
    .description('list, add, remove, disable, enable and reset Gemini keys');

  keys
    .command('list')
    .description('every key: group, id, masked key, project, status and reason, cooldowns, last health check')
    .option('--group <name>', 'only this group')
    .action(async (options: { group?: string }) => {
      const now = Date.now();
      const target = cli.target();
      const rows = await keyRows(target, now, options.group);
      const table = await target.state();
      if (cli.json())
        printJson(cli.io.stdout, { target: target.label, state: table?.name ?? null, keys: rows });
      else {
        printKeys(cli.io, rows, now);
        if (table === undefined)
          cli.io.stderr.write('(no shared state table: run-time status, cooldowns and checks are unknown)\n');
      }
    });

  keys
    .command('add')
    .description('add keys read from stdin (or --file), one per line; never from arguments (shell history)')
    .requiredOption('--group <name>', 'group to add them to')
    .option('--project <id>', 'Google Cloud project of these keys (keys of one project share its quota)')
    .option('--file <path>', 'read the keys from this file instead of stdin')
    .option('--create', 'create the group if it does not exist')
    .action(async (options: { group: string; project?: string; file?: string; create?: boolean }) => {
      const target = cli.target();
      const given = await readKeys(cli.io, options.file);
      await target.editKeys((doc) => addKeys(doc, options.group, given, options));
      const added = given.map((k) => ({ group: options.group, keyId: keyId(k), key: maskKey(k) }));
      for (const a of added) cli.io.stderr.write(`added ${a.keyId} (${a.key}) to group ${a.group}\n`);
      cli.io.stderr.write(`${added.length} key(s) added in ${target.label}\n`);
      if (cli.json()) printJson(cli.io.stdout, { added });
    });

  keys
    .command('remove')
    .description('remove keys by id from the configuration')
    .argument('<ids...>', 'key ids (as `keys list` shows them)')
    .option('--group <name>', 'only from this group')
    .action(async (ids: string[], options: { group?: string }) => {
      const target = cli.target();
      const { places } = await findKeys(target, ids, options.group);
      const wanted = new Set(places.map((p) => p.keyId));
      const removed = await target.editKeys((doc) => removeKeys(doc, wanted, options.group));
      for (const p of removed) cli.io.stderr.write(`removed ${p.keyId} from group ${p.group}\n`);
      if (cli.json()) printJson(cli.io.stdout, { removed });
    });

  registerKeySwitches(keys, cli);
}
