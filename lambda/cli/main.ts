/**
 * `gemini-proxy`: the operator's CLI (keys, tokens, status, the health check, usage) for a deployed stack
 * or a local config file. `bin/gemini-proxy-cli.mjs` runs it; tests call {@link run} in process.
 */
import { pathToFileURL } from 'node:url';
import { Command, CommanderError } from 'commander';
import { ConfigError } from '../core/config/parse.js';
import { registerCheck } from './commands/check.js';
import { registerKeys } from './commands/keys.js';
import { registerStatus } from './commands/status.js';
import { registerTokens } from './commands/tokens.js';
import { registerUsage } from './commands/usage.js';
import { CliError, type CliIo, EXIT, processIo } from './io.js';
import { DEFAULT_STACK, resolveTarget, type Target } from './target.js';

/** The global options, given before or after the command. */
export interface GlobalOptions {
  readonly stack?: string;
  readonly region?: string;
  readonly config?: string;
  readonly json?: boolean;
}

/** What every command module is given: the io, and the target and output mode the global options name. */
export interface CliContext {
  readonly io: CliIo;
  /** The target (resolved once, on first use): a {@link LocalTarget} or an {@link AwsTarget}. */
  target(): Target;
  /** True when `--json` was given: print one JSON document on stdout instead of a table. */
  json(): boolean;
}

/** A command module: adds its command(s) to the program. */
export type CommandModule = (program: Command, cli: CliContext) => void;

const COMMANDS: readonly CommandModule[] = [
  registerKeys,
  registerTokens,
  registerStatus,
  registerCheck,
  registerUsage,
];

function program(io: CliIo): Command {
  const root = new Command('gemini-proxy')
    .description('Operate a Gemini key gateway: keys, client tokens, status, health check, usage.')
    .option('--stack <name>', `deployed stack to operate (default: ${DEFAULT_STACK})`)
    .option('--region <region>', 'AWS region of the stack (default: the AWS SDK default chain)')
    .option('--config <path>', 'local config file to operate (default: $CONFIG_PATH or ./config.yaml)')
    .option('--json', 'print data as JSON')
    .addHelpText(
      'after',
      '\nTarget: --config, or without --stack a config file that exists, means that local file;\n' +
        'otherwise the stack (AWS credentials from the SDK default chain).\n' +
        'Exit codes: 0 ok, 1 failure, 2 usage error.',
    )
    .showHelpAfterError('(run with --help for usage)')
    .configureHelp({ showGlobalOptions: true })
    // Set before any subcommand is added: subcommands inherit both.
    .exitOverride()
    .configureOutput({
      writeOut: (text) => io.stdout.write(text),
      writeErr: (text) => io.stderr.write(text),
      outputError: (text, write) => write(text),
    });
  let target: Target | undefined;
  const cli: CliContext = {
    io,
    target: () => {
      target ??= resolveTarget(root.opts<GlobalOptions>(), io);
      return target;
    },
    json: () => root.opts<GlobalOptions>().json === true,
  };
  for (const register of COMMANDS) register(root, cli);
  return root;
}

/** The message shown for an error: never a key or token (no error carrying one reaches here). */
function describe(err: unknown): string {
  if (err instanceof CliError || err instanceof ConfigError) return err.message;
  if (err instanceof Error) {
    if (err.message === 'Region is missing') return 'no AWS region: pass --region or set AWS_REGION';
    return `${err.name}: ${err.message}`;
  }
  return String(err);
}

/** Runs the CLI on `argv` (without `node` and the script); resolves to the exit code. */
export async function run(argv: readonly string[], io: CliIo = processIo()): Promise<number> {
  try {
    await program(io).parseAsync([...argv], { from: 'user' });
    return EXIT.ok;
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version exit 0; help shown for a missing command, and every parse error, are usage errors.
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') return EXIT.ok;
      if (err.code === 'commander.help') return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
      return EXIT.usage;
    }
    io.stderr.write(`gemini-proxy: ${describe(err)}\n`);
    if (io.env.GEMINI_PROXY_DEBUG === '1' && err instanceof Error) io.stderr.write(`${err.stack}\n`);
    return err instanceof CliError ? err.exitCode : EXIT.failure;
  }
}

/** The process entry: runs on the process's arguments and sets its exit code. */
export async function main(): Promise<void> {
  process.exitCode = await run(process.argv.slice(2));
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  void main();
}
