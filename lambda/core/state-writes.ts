import type { KeyStateStore, KeyStateUpdate } from './key-state/port.js';
import type { Logger } from './logger.js';

/**
 * State writes started by requests and not yet finished. Kept per instance, not per configuration, so
 * that the end of an invocation waits for every write however many times the keys changed meanwhile.
 */
export class StateWrites {
  private readonly pending = new Set<Promise<void>>();

  constructor(
    private readonly store: KeyStateStore,
    private readonly logger: Logger,
  ) {}

  /** Starts a write; a failure is logged, never dropped silently, and {@link settle} awaits it. */
  record(update: KeyStateUpdate): void {
    const write = this.store.record(update).catch((err: unknown) => {
      this.logger.error('state write failed', {
        kind: update.kind,
        keyId: update.keyId,
        error: err instanceof Error ? err.message : 'unknown',
      });
    });
    this.pending.add(write);
    void write.finally(() => this.pending.delete(write));
  }

  /** Resolves once every write started so far (and any started meanwhile) has settled. */
  async settle(): Promise<void> {
    while (this.pending.size > 0) await Promise.all(this.pending);
  }
}
