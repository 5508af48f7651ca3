/** What the CLI talks to: its streams, environment and working directory (a process's, or a test's). */

/** A stream the CLI writes to. */
export interface OutStream {
  write(text: string): void;
  /** True for a terminal: the only case where anything but plain text may be written. */
  readonly isTTY?: boolean | undefined;
}

export interface CliIo {
  /** Data only: tables, JSON, the one token `tokens create` makes. */
  readonly stdout: OutStream;
  /** Everything said to the operator: progress, warnings, errors, help on a usage error. */
  readonly stderr: OutStream;
  /** All of stdin, as text (read only by commands that take input there, e.g. `keys add`). */
  readStdin(): Promise<string>;
  /** True when stdin is a terminal: a prompt is shown before reading it. */
  readonly stdinIsTTY: boolean;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly cwd: string;
}

/** Exit codes: 0 ok, 1 a failure, 2 a usage error (a bad option, a missing argument). */
export const EXIT = { ok: 0, failure: 1, usage: 2 } as const;

/**
 * An error the CLI reports as `gemini-proxy: <message>` and exits with `exitCode` (1 unless said). Its
 * message is shown as is: it must never hold a key or a token.
 */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = EXIT.failure,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'CliError';
  }
}

/** A usage error found by a command itself (commander finds the others): exit code 2. */
export class UsageError extends CliError {
  constructor(message: string) {
    super(message, EXIT.usage);
    this.name = 'UsageError';
  }
}

/** The io of this process. */
export function processIo(): CliIo {
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    stdinIsTTY: process.stdin.isTTY === true,
    env: process.env,
    cwd: process.cwd(),
    async readStdin() {
      const chunks: Buffer[] = [];
      for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
      return Buffer.concat(chunks).toString('utf8');
    },
  };
}
