/** `tokens create | list | revoke`: client tokens, of which only the SHA-256 is ever stored. */
import { type Command, InvalidArgumentError } from 'commander';
import { UsageError } from '../io.js';
import type { CliContext } from '../main.js';
import { printJson, printTable } from '../output.js';
import { addTokenHash, listTokens, newToken, removeToken } from '../token-edit.js';
import { usageRows } from '../usage-source.js';

/** How far back `tokens list` looks for a client's last request. */
const LAST_USED_DAYS = 30;

/** The names the config accepts for a token (`client_tokens[].name`). */
const NAME = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/;

function parseRpm(value: string): number {
  const rpm = Number(value);
  if (!Number.isInteger(rpm) || rpm < 1) throw new InvalidArgumentError('expected a positive whole number');
  return rpm;
}

export function registerTokens(program: Command, cli: CliContext): void {
  const tokens = program.command('tokens').description('create, list and revoke client tokens');

  tokens
    .command('create')
    .description('make a new client token: printed once, alone, on stdout; only its SHA-256 is stored')
    .requiredOption(
      '--name <name>',
      'who it is for (1-64 letters, digits, . _ @ -): what logs and usage call it',
    )
    .option('--rpm <n>', "this client's requests per minute, across every instance", parseRpm)
    .action(async (options: { name: string; rpm?: number }) => {
      if (!NAME.test(options.name))
        throw new UsageError(
          '--name: expected 1-64 letters, digits, ., _, @ or -, starting with a letter or digit',
        );
      const target = cli.target();
      const { token, sha256 } = newToken();
      const created = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
      await target.editTokens((doc, seq) =>
        addTokenHash(doc, seq, { sha256, name: options.name, rpm: options.rpm, created }),
      );
      const id = sha256.slice(0, 16);
      if (cli.json())
        printJson(cli.io.stdout, { token, name: options.name, id, rpm: options.rpm ?? null, created });
      else cli.io.stdout.write(`${token}\n`);
      cli.io.stderr.write(
        `created token ${options.name} (id ${id}) in ${target.label}: it is shown only now, keep it safe\n`,
      );
      if (target.kind === 'local' && target.tokensOverridden)
        cli.io.stderr.write(
          "warning: CLIENT_TOKENS is set here; a server started with it ignores the file's tokens\n",
        );
    });

  tokens
    .command('list')
    .description('every client token: name, id, rpm, creation time (never the token)')
    .action(async () => {
      const target = cli.target();
      // The last Pacific day (of the past 30) each client made a request, from the usage items.
      const lastDay = new Map<string, string>();
      for (const u of (await usageRows(target, 'client', LAST_USED_DAYS, Date.now())) ?? []) {
        if (u.clientId !== undefined && u.requests > 0 && (lastDay.get(u.clientId) ?? '') < u.day)
          lastDay.set(u.clientId, u.day);
      }
      const rows = listTokens(await target.readTokens()).map((t) => ({
        name: t.name ?? null,
        id: t.id,
        rpm: t.rpm ?? null,
        created: t.created ?? null,
        stored: t.stored,
        // A Pacific day (usage is counted per day); null: not in the past 30 days, or no shared table.
        lastUsed: lastDay.get(t.id) ?? null,
      }));
      if (cli.json()) {
        printJson(cli.io.stdout, { target: target.label, tokens: rows });
        return;
      }
      printTable(
        cli.io.stdout,
        ['NAME', 'ID', 'RPM', 'CREATED', 'STORED', 'LAST USED'],
        rows.map((r) => [
          r.name ?? '-',
          r.id,
          r.rpm?.toString() ?? '-',
          r.created ?? '-',
          r.stored,
          r.lastUsed ?? '-',
        ]),
      );
    });

  tokens
    .command('revoke')
    .description('remove a client token, by name or id')
    .argument('<name-or-id>', 'the name given at creation, or the id `tokens list` shows')
    .action(async (nameOrId: string) => {
      const target = cli.target();
      const removed = await target.editTokens((_doc, seq) => removeToken(seq, nameOrId));
      cli.io.stderr.write(`revoked ${removed.name ?? '(unnamed)'} (id ${removed.id}) in ${target.label}\n`);
      if (cli.json()) printJson(cli.io.stdout, { revoked: { name: removed.name ?? null, id: removed.id } });
    });
}
