/** `status`: the pool per group, whether each part is reachable, and (for a stack) its alarms. */
import type { Command } from 'commander';
import type { AlarmState } from '../aws-target.js';
import { CliError } from '../io.js';
import type { CliContext } from '../main.js';
import { printJson, printTable } from '../output.js';
import type { Target } from '../target.js';
import { listTokens } from '../token-edit.js';
import { type KeyRow, keyRows } from './keys.js';

/** One part of the deployment and whether it answered. */
export interface Component {
  readonly name: string;
  readonly ok: boolean;
  readonly detail: string;
}

/** A group's keys by status: `active` counts keys serving now (not cooling for any model). */
export interface GroupCounts {
  readonly group: string;
  readonly keys: number;
  readonly active: number;
  readonly cooling: number;
  readonly invalid: number;
  readonly disabled: number;
  readonly unknown: number;
}

function countByGroup(rows: readonly KeyRow[]): GroupCounts[] {
  const groups = new Map<string, { -readonly [K in keyof GroupCounts]: GroupCounts[K] }>();
  for (const r of rows) {
    let g = groups.get(r.group);
    if (g === undefined) {
      g = { group: r.group, keys: 0, active: 0, cooling: 0, invalid: 0, disabled: 0, unknown: 0 };
      groups.set(r.group, g);
    }
    g.keys++;
    if (r.status === 'active' && r.cooling.length > 0) g.cooling++;
    else if (
      r.status === 'active' ||
      r.status === 'invalid' ||
      r.status === 'disabled' ||
      r.status === 'unknown'
    )
      g[r.status]++;
  }
  return [...groups.values()];
}

/** Runs `probe`, noting it as a component: its detail when it answers, the error's name when it fails. */
async function component<T>(
  parts: Component[],
  name: string,
  probe: () => Promise<T>,
  detail: (value: T) => string,
): Promise<T | undefined> {
  try {
    const value = await probe();
    parts.push({ name, ok: true, detail: detail(value) });
    return value;
  } catch (err) {
    const why =
      err instanceof CliError ? err.message : err instanceof Error ? `${err.name}: ${err.message}` : 'failed';
    parts.push({ name, ok: false, detail: why });
    return undefined;
  }
}

async function inspect(target: Target, now: number) {
  const parts: Component[] = [];
  let alarms: AlarmState[] | null = null;
  if (target.kind === 'aws') {
    await target.outputs();
    await component(
      parts,
      'keys secret',
      () => target.readKeys(),
      (doc) => `${(doc.get('groups') as { items?: unknown[] })?.items?.length ?? 0} group(s)`,
    );
    await component(
      parts,
      'tokens secret',
      () => target.readTokens(),
      (seq) => `${listTokens(seq).length} token(s)`,
    );
    await component(
      parts,
      'state table',
      async () => {
        const table = await target.state();
        await table.ping();
        return table.name;
      },
      (name) => `table ${name} reachable`,
    );
    alarms =
      (await component(
        parts,
        'alarms',
        () => target.alarms(),
        (a) => `${a.filter((x) => x.state === 'ALARM').length} of ${a.length} in ALARM`,
      )) ?? null;
  } else {
    await component(
      parts,
      'config',
      async () => target.config(),
      (c) => `${c.groups.length} group(s), ${c.client_tokens.length} token(s)`,
    );
    const table = await component(
      parts,
      'state',
      () => target.state(),
      (t) => (t === undefined ? 'memory (each server its own)' : `table ${t.name}`),
    );
    if (table !== undefined)
      await component(
        parts,
        'state table',
        () => table.ping(),
        () => `table ${table.name} reachable`,
      );
  }
  const rows = parts.every((p) => p.ok || p.name === 'alarms') ? await keyRows(target, now) : [];
  return { parts, groups: countByGroup(rows), alarms };
}

export function registerStatus(program: Command, cli: CliContext): void {
  program
    .command('status')
    .description(
      'keys per group by status, whether the secrets/config and the state table answer, alarm states',
    )
    .action(async () => {
      const target = cli.target();
      const { parts, groups, alarms } = await inspect(target, Date.now());
      if (cli.json()) {
        printJson(cli.io.stdout, { target: target.label, components: parts, groups, alarms });
      } else {
        const out = cli.io.stdout;
        out.write(`${target.label}\n\n`);
        printTable(
          out,
          ['PART', 'OK', 'DETAIL'],
          parts.map((p) => [p.name, p.ok ? 'yes' : 'NO', p.detail]),
        );
        out.write('\n');
        printTable(
          out,
          ['GROUP', 'KEYS', 'ACTIVE', 'COOLING', 'INVALID', 'DISABLED', 'UNKNOWN'],
          groups.map((g) => [
            g.group,
            ...[g.keys, g.active, g.cooling, g.invalid, g.disabled, g.unknown].map(String),
          ]),
        );
        if (alarms !== null) {
          out.write('\n');
          printTable(
            out,
            ['ALARM', 'STATE', 'SINCE'],
            alarms.map((a) => [a.name, a.state, a.since ?? '-']),
          );
        }
      }
      if (parts.some((p) => !p.ok)) throw new CliError('some parts did not answer (see above)');
    });
}
