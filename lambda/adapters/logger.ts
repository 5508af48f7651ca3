import type { LogFields, Logger } from '../core/logger.js';

const LEVELS = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 } as const;
export type LogLevel = keyof typeof LEVELS;

export function parseLogLevel(value: string | undefined): LogLevel {
  const v = (value ?? 'info').toLowerCase();
  if (v in LEVELS) return v as LogLevel;
  throw new Error(`LOG_LEVEL: expected one of ${Object.keys(LEVELS).join(', ')}`);
}

/**
 * Writes lines to stdout, coalescing the lines of one event-loop turn into a single write: under load
 * that is one syscall for many requests instead of one each. `flush` writes what is pending at once.
 */
export class CoalescingStdout {
  private pending: string[] = [];
  private scheduled = false;

  readonly write = (line: string): void => {
    this.pending.push(line);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flush);
    }
  };

  readonly flush = (): void => {
    this.scheduled = false;
    if (this.pending.length === 0) return;
    const text = this.pending.join('');
    this.pending = [];
    process.stdout.write(text);
  };
}

/** Longest string a log field keeps; what a client sends (a path, a model name) can be far longer. */
export const MAX_FIELD_CHARS = 1024;

/** The fields with every string longer than {@link MAX_FIELD_CHARS} cut, marked with how much was cut. */
function capFields(fields: LogFields): LogFields {
  let capped: LogFields | undefined;
  for (const [name, value] of Object.entries(fields)) {
    if (typeof value !== 'string' || value.length <= MAX_FIELD_CHARS) continue;
    capped ??= { ...fields };
    capped[name] = `${value.slice(0, MAX_FIELD_CHARS)}…[+${value.length - MAX_FIELD_CHARS} chars]`;
  }
  return capped ?? fields;
}

/**
 * One JSON object per line: `{"level","time","message",…fields}`. Fields must never carry secrets; string
 * fields are cut at {@link MAX_FIELD_CHARS}, so a client can't make a line long.
 */
export class JsonLogger implements Logger {
  private readonly threshold: number;

  constructor(
    level: LogLevel = 'info',
    private readonly write: (line: string) => void = (line) => process.stdout.write(line),
    private readonly base: LogFields = {},
  ) {
    this.threshold = LEVELS[level];
  }

  debug(message: string, fields?: LogFields): void {
    if (this.threshold <= LEVELS.debug) this.emit('debug', message, fields);
  }
  info(message: string, fields?: LogFields): void {
    if (this.threshold <= LEVELS.info) this.emit('info', message, fields);
  }
  warn(message: string, fields?: LogFields): void {
    if (this.threshold <= LEVELS.warn) this.emit('warn', message, fields);
  }
  error(message: string, fields?: LogFields): void {
    if (this.threshold <= LEVELS.error) this.emit('error', message, fields);
  }

  private emit(level: string, message: string, fields: LogFields | undefined): void {
    this.write(
      `${JSON.stringify({ level, time: new Date().toISOString(), message, ...this.base, ...(fields && capFields(fields)) })}\n`,
    );
  }
}
