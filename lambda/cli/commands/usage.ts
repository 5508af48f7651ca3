/**
 * `usage`: registered here with its options; its report comes with usage accounting (not in this branch
 * yet: until then it says so and exits 1).
 */
import { type Command, InvalidArgumentError, Option } from 'commander';
import { CliError } from '../io.js';
import type { CliContext } from '../main.js';

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

export function registerUsage(program: Command, _cli: CliContext): void {
  program
    .command('usage')
    .description('requests, errors, input and output tokens per Pacific day (not yet available)')
    .option('--days <n>', 'how many days, today included', parseDays, 7)
    .addOption(new Option('--by <what>', 'one row per').choices(['client', 'key', 'model']).default('client'))
    .action((_options: UsageOptions) => {
      throw new CliError('usage is not yet available in this version');
    });
}
