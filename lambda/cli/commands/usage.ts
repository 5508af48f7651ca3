/** `usage`: registered here; its report is implemented with usage accounting (not yet available). */
import type { Command } from 'commander';
import { CliError } from '../io.js';
import type { CliContext } from '../main.js';

export function registerUsage(program: Command, _cli: CliContext): void {
  program
    .command('usage')
    .description('requests, errors, input and output tokens per day (not yet available)')
    .option('--days <n>', 'how many days back', '7')
    .option('--by <what>', 'client, key or model', 'client')
    .action(() => {
      throw new CliError('usage is not yet available in this version');
    });
}
