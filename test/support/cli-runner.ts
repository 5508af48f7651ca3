import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { expect } from 'vitest';
import type { CliIo } from '../../lambda/cli/io.js';
import { run } from '../../lambda/cli/main.js';

/** What one CLI run printed, and how it ended. */
export interface CliResult {
  readonly argv: readonly string[];
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export interface CliRunOptions {
  readonly cwd: string;
  /** The CLI's environment (in process: exactly this; spawned: added to PATH and TMPDIR). */
  readonly env?: Record<string, string | undefined>;
  readonly stdin?: string;
  /** Spawned runs: the child's TMPDIR (tsx keeps its cache there). */
  readonly tmpdir?: string;
}

/**
 * Every CLI output of a test file, for the leak check: no output may hold a key or a token, except the
 * stdout of `tokens create`, which holds the one token it made (and that token nowhere else).
 */
export class CliOutputs {
  readonly results: CliResult[] = [];

  /** Runs the CLI in this process, through the exported `run`. */
  async run(argv: readonly string[], options: CliRunOptions): Promise<CliResult> {
    let stdout = '';
    let stderr = '';
    const io: CliIo = {
      stdout: {
        write: (t) => {
          stdout += t;
        },
        isTTY: false,
      },
      stderr: {
        write: (t) => {
          stderr += t;
        },
        isTTY: false,
      },
      stdinIsTTY: false,
      env: options.env ?? {},
      cwd: options.cwd,
      readStdin: async () => options.stdin ?? '',
    };
    const code = await run(argv, io);
    return this.note({ argv, code, stdout, stderr });
  }

  /** Runs the CLI as a user does: `node bin/gemini-proxy-cli.mjs …` in a child process. */
  async spawn(argv: readonly string[], options: CliRunOptions): Promise<CliResult> {
    const child = spawn(process.execPath, [join(process.cwd(), 'bin/gemini-proxy-cli.mjs'), ...argv], {
      cwd: options.cwd,
      env: {
        PATH: process.env.PATH ?? '',
        ...(options.tmpdir === undefined ? {} : { TMPDIR: options.tmpdir }),
        ...options.env,
      },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.stdin.end(options.stdin ?? '');
    const [code] = (await once(child, 'exit')) as [number | null];
    return this.note({ argv, code: code ?? -1, stdout, stderr });
  }

  private note(result: CliResult): CliResult {
    this.results.push(result);
    return result;
  }

  /** Asserts that no output holds any of `secrets` (keys, tokens), the created tokens' own stdout aside. */
  expectNoLeaks(secrets: readonly string[]): void {
    expect(this.results.length).toBeGreaterThan(0);
    for (const r of this.results) {
      const created = r.argv.includes('tokens') && r.argv.includes('create') && r.code === 0;
      const mine = created ? (JSON.parse(jsonOrToken(r.stdout)) as { token: string }).token : undefined;
      for (const secret of secrets) {
        expect(r.stderr, `stderr of ${r.argv.join(' ')}`).not.toContain(secret);
        if (secret !== mine) expect(r.stdout, `stdout of ${r.argv.join(' ')}`).not.toContain(secret);
      }
    }
  }

  /** Tokens made by `tokens create` runs so far (secrets every other output must not hold). */
  createdTokens(): string[] {
    return this.results
      .filter((r) => r.argv.includes('tokens') && r.argv.includes('create') && r.code === 0)
      .map((r) => (JSON.parse(jsonOrToken(r.stdout)) as { token: string }).token);
  }
}

/** `tokens create` prints the token alone, or with --json a document holding it. */
function jsonOrToken(stdout: string): string {
  return stdout.trimStart().startsWith('{') ? stdout : JSON.stringify({ token: stdout.trim() });
}
