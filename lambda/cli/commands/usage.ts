/**
 * `usage`: requests, errors, input and output tokens per Pacific day, by client, key or model, from the
 * usage items every proxy instance writes to the shared table.
 */
import { type Command, InvalidArgumentError, Option } from 'commander';
import { CliError } from '../io.js';
import type { CliContext } from '../main.js';
import { usageCommand } from '../usage-report.js';
import { usageSource } from '../usage-source.js';

/** The options `usage` takes. */
export interface UsageOptions {
  /** Pacific days, today included. */
  readonly days: number;
  readonly by: 'client' | 'key' | 'model';
}

function parseDays(value: string): number {
  const days = Number(value);
  if (!Number.isInteger(days) || days < 1 || days > 90)
    throw new InvalidArgumentError('expected a whole number of days, 1-90');
  return days;
}

export function registerUsage(program: Command, cli: CliContext): void {
  program
    .command('usage')
    .description('requests, errors, input and output tokens per Pacific day, by client, key or model')
    .option('--days <n>', 'how many days, today included', parseDays, 7)
    .addOption(new Option('--by <what>', 'one row per').choices(['client', 'key', 'model']).default('client'))
    .action(async (options: UsageOptions) => {
      const source = await usageSource(cli.target());
      if (source === undefined) {
        throw new CliError(
          'usage is kept in the shared table: this config has none (state.store: memory counts only inside the running server)',
        );
      }
      const out = await usageCommand({ days: options.days, by: options.by, json: cli.json() }, source);
      cli.io.stdout.write(out.endsWith('\n') ? out : `${out}\n`);
    });
}
