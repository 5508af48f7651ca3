/**
 * `keys disable | enable | reset`. With shared state (a stack's table, a local config's DynamoDB table)
 * the operator's switch is written there, as every proxy's store writes it; a local config without a table
 * gets `disabled: true` on the key in the file instead (the server picks that up when it reloads the file).
 */
import type { Command } from 'commander';
import { setDisabledFlag } from '../config-edit.js';
import { CliError } from '../io.js';
import type { CliContext } from '../main.js';
import { printJson } from '../output.js';
import { findKeys } from './key-ids.js';

export function registerKeySwitches(keys: Command, cli: CliContext): void {
  keys
    .command('disable')
    .description('take a key out of rotation (it stays configured)')
    .argument('<id>', 'key id')
    .option('--reason <text>', 'why (kept with the switch in the shared table)')
    .option('--group <name>', 'only in this group (default: every group holding the key)')
    .action(async (id: string, options: { reason?: string; group?: string }) => {
      const target = cli.target();
      const { places } = await findKeys(target, [id], options.group);
      const table = await target.state();
      if (table !== undefined) {
        for (const p of places) await table.operator(p.group, p.keyId, 'disabled', options.reason);
      } else {
        const ids = new Set(places.map((p) => p.keyId));
        await target.editKeys((doc) => setDisabledFlag(doc, ids, true, options.group));
        if (options.reason !== undefined)
          cli.io.stderr.write('note: without a shared state table the reason is not kept\n');
      }
      const where = table === undefined ? 'config' : 'table';
      for (const p of places) cli.io.stderr.write(`disabled ${p.keyId} in group ${p.group} (${where})\n`);
      if (cli.json()) printJson(cli.io.stdout, { disabled: places, in: where });
    });

  keys
    .command('enable')
    .description(
      'put a disabled key back in rotation (an invalid key stays invalid until the health check revives it)',
    )
    .argument('<id>', 'key id')
    .option('--group <name>', 'only in this group (default: every group holding the key)')
    .action(async (id: string, options: { group?: string }) => {
      const target = cli.target();
      const { places } = await findKeys(target, [id], options.group);
      const table = await target.state();
      if (table !== undefined) {
        for (const p of places) await table.operator(p.group, p.keyId, 'active');
      }
      // A `disabled: true` in the configuration is lifted too (no write when there is none).
      const ids = new Set(places.map((p) => p.keyId));
      await target.editKeys((doc) => setDisabledFlag(doc, ids, false, options.group));
      for (const p of places) cli.io.stderr.write(`enabled ${p.keyId} in group ${p.group}\n`);
      if (cli.json()) printJson(cli.io.stdout, { enabled: places });
    });

  keys
    .command('reset')
    .description("clear a key's cooldowns and parks (every model) in the shared state")
    .argument('<id>', 'key id')
    .option('--group <name>', 'only in this group (default: every group holding the key)')
    .action(async (id: string, options: { group?: string }) => {
      const target = cli.target();
      const { places, entries } = await findKeys(target, [id], options.group);
      const table = await target.state();
      if (table === undefined)
        throw new CliError(
          "reset needs shared state: this config keeps key state in the server's memory (state.store: memory); restart the server to clear it",
        );
      const cleared = [];
      for (const p of places) {
        // Limits learned from Gemini belong to the key's budget (its project): a tier change clears them too.
        const project = entries.find((e) => e.group === p.group && e.keyId === p.keyId)?.project;
        const count = await table.reset(p.group, p.keyId, project ? `project:${project}` : `key:${p.keyId}`);
        cleared.push({ ...p, cleared: count });
        cli.io.stderr.write(
          `cleared ${count} cooldown(s), park(s) and learned limit(s) of ${p.keyId} in group ${p.group}\n`,
        );
      }
      if (cli.json()) printJson(cli.io.stdout, { reset: cleared });
    });
}
