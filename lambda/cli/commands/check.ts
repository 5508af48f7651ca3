/**
 * `check`: runs the key health check now. A stack: its health-check function, invoked and waited for. A
 * local config: the same check (`runHealthCheck`) in this process, against the configured keys, its
 * results written to the config's state table when it has one.
 */
import type { Command } from 'commander';
import { MemoryKeyStateStore } from '../../adapters/state/memory-store.js';
import { NodeUpstreamClient } from '../../adapters/upstream-http.js';
import { configuredKeys } from '../../core/config/derived.js';
import { keyId } from '../../core/credentials.js';
import { runHealthCheck } from '../../core/health-check.js';
import type { LocalTarget } from '../local-target.js';
import type { CliContext } from '../main.js';
import { maskKey, printJson, printTable } from '../output.js';
import { keyRows } from './keys.js';

/** How long a local check may take in all; keys not reached by then are reported `skipped`. */
const LOCAL_BUDGET_MS = 60_000;

async function checkLocal(target: LocalTarget) {
  const config = target.config();
  const table = await target.state();
  const masked = new Map<string, string>();
  const groups = config.groups.map((g) => ({
    name: g.name,
    keys: new Map(
      configuredKeys(g).map((k) => {
        masked.set(keyId(k.apiKey), maskKey(k.apiKey));
        return [keyId(k.apiKey), k.apiKey] as const;
      }),
    ),
    proxy: g.proxy_url ?? config.upstream.proxy_url,
  }));
  const upstream = new NodeUpstreamClient();
  try {
    const result = await runHealthCheck({
      groups,
      store: table?.keyStore ?? new MemoryKeyStateStore(),
      upstream,
      nativeBaseUrl: config.upstream.native_base_url,
      concurrency: 4,
      budgetMs: LOCAL_BUDGET_MS,
      now: Date.now,
    });
    const checks = result.checks.map((c) => ({
      group: c.group,
      keyId: c.keyId,
      key: masked.get(c.keyId) ?? '…',
      outcome: c.outcome,
      reason: c.reason ?? null,
    }));
    return { checks, stored: table !== undefined };
  } finally {
    upstream.close();
  }
}

export function registerCheck(program: Command, cli: CliContext): void {
  program
    .command('check')
    .description(
      'run the key health check now (a stack: invoke its health-check function) and show the result',
    )
    .action(async () => {
      const target = cli.target();
      if (target.kind === 'aws') {
        const result = await target.invokeHealthCheck();
        const invalid = (await keyRows(target, Date.now())).filter((r) => r.status === 'invalid');
        if (cli.json()) {
          printJson(cli.io.stdout, { target: target.label, result, invalid });
          return;
        }
        const r = (result ?? {}) as { checked?: number; skipped?: number; dead?: number };
        cli.io.stdout.write(
          `checked ${r.checked ?? '?'} key(s), ${r.dead ?? '?'} dead, ${r.skipped ?? '?'} not reached in time\n`,
        );
        if (invalid.length > 0) {
          cli.io.stdout.write('\ninvalid keys:\n');
          printTable(
            cli.io.stdout,
            ['GROUP', 'KEY ID', 'KEY', 'REASON'],
            invalid.map((k) => [k.group, k.keyId, k.key, k.reason ?? '-']),
          );
        }
        return;
      }
      const { checks, stored } = await checkLocal(target);
      if (cli.json()) printJson(cli.io.stdout, { target: target.label, checks, stored });
      else
        printTable(
          cli.io.stdout,
          ['GROUP', 'KEY ID', 'KEY', 'OUTCOME', 'REASON'],
          checks.map((c) => [c.group, c.keyId, c.key, c.outcome, c.reason ?? '-']),
        );
      if (!stored)
        cli.io.stderr.write(
          '(no shared state table: the results are shown, not stored; the server learns by itself)\n',
        );
    });
}
