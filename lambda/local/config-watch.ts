import { createHash } from 'node:crypto';
import { type FSWatcher, watch } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { ConfigError } from '../core/config/parse.js';
import type { ProxyConfig } from '../core/config/schema.js';
import type { Logger } from '../core/logger.js';

export interface ConfigWatchOptions {
  /** The config file. Its directory is watched: editors replace a file by renaming another over it. */
  readonly path: string;
  /** The text the running configuration was read from: the same text again is no change. */
  readonly initialText: string;
  /** The configuration a text describes; throws {@link ConfigError} (naming fields, never values). */
  readonly parse: (text: string) => ProxyConfig;
  /** Called with each valid new configuration; may throw {@link ConfigError} to reject it. */
  readonly apply: (config: ProxyConfig) => void;
  readonly logger: Logger;
  /** How often the file is looked at when no change event came (some file systems send none). @default 1000 */
  readonly pollMs?: number;
  /** Quiet time after a change event before the file is read (an editor's write comes in pieces). @default 100 */
  readonly debounceMs?: number;
}

export interface ConfigWatch {
  /** Reads the file now and applies it if its text changed; resolves once done. */
  check(): Promise<void>;
  close(): void;
}

const POLL_MS = 1000;
const DEBOUNCE_MS = 100;
/** The longest time from a saved edit to its effect, with the default timings: a poll, then the quiet time. */
export const RELOAD_BOUND_MS = POLL_MS + DEBOUNCE_MS;

const digest = (text: string) => createHash('sha256').update(text).digest('hex');

/**
 * Watches a config file and hands each valid edit to `apply`. An edit that does not parse or validate is
 * logged (the fields at fault) and the running configuration stays. A file that goes away (deleted, or
 * between an editor's write and rename) leaves the server serving; it is read again when it reappears.
 */
export function watchConfig(options: ConfigWatchOptions): ConfigWatch {
  const { path, logger } = options;
  const pollMs = options.pollMs ?? POLL_MS;
  const debounceMs = options.debounceMs ?? DEBOUNCE_MS;
  /** Digest of the last text acted on, valid or not: a rejected text is reported once. */
  let seen = digest(options.initialText);
  let missing = false;
  let lastStat = '';
  let closed = false;
  let debounce: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let again = false;

  const read = async (): Promise<void> => {
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      if (!missing) {
        missing = true;
        const code = (err as NodeJS.ErrnoException).code ?? 'error';
        logger.warn('config file unreadable; keeping the running configuration', { path, error: code });
      }
      return;
    }
    if (missing) logger.info('config file readable again', { path });
    missing = false;
    const hash = digest(text);
    if (hash === seen || closed) return;
    seen = hash;
    try {
      options.apply(options.parse(text));
    } catch (err) {
      // ConfigError messages name fields, never values; anything else is not quoted at all.
      const problem = err instanceof ConfigError ? err.message : 'invalid configuration';
      logger.error('config rejected; keeping the running configuration', { path, problem });
    }
  };

  /** One read at a time; a change noticed during a read gets a read of its own after it. */
  const check = (): Promise<void> => {
    if (running !== undefined) {
      again = true;
      return running;
    }
    running = read()
      .catch((err: unknown) => {
        logger.error('config reload failed', { error: err instanceof Error ? err.name : 'unknown' });
      })
      .finally(() => {
        running = undefined;
        if (again && !closed) {
          again = false;
          void check();
        }
      });
    return running;
  };

  const soon = () => {
    if (closed) return;
    clearTimeout(debounce);
    debounce = setTimeout(() => void check(), debounceMs);
    debounce.unref();
  };

  let watcher: FSWatcher | undefined;
  try {
    watcher = watch(dirname(path), { persistent: false }, (_event, name) => {
      if (name === null || name === basename(path)) soon();
    });
    watcher.on('error', () => {
      // The directory went away or can't be watched: the poll below still looks at the file.
      watcher?.close();
      watcher = undefined;
    });
  } catch {
    watcher = undefined;
  }

  // The fallback: file systems (network mounts, some containers) that send no events.
  const poll = setInterval(() => {
    stat(path).then(
      (s) => {
        const now = `${s.ino}:${s.size}:${s.mtimeMs}:${s.ctimeMs}`;
        if (now !== lastStat || missing) {
          lastStat = now;
          soon();
        }
      },
      () => {
        lastStat = '';
      },
    );
  }, pollMs);
  poll.unref();

  return {
    check,
    close() {
      closed = true;
      clearTimeout(debounce);
      clearInterval(poll);
      watcher?.close();
    },
  };
}
