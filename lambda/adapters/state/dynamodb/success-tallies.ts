import { keyItemKey, successCountersWrite } from './key-items.js';
import type { StateTable } from './table.js';

interface SuccessTally {
  group: string;
  keyId: string;
  count: number;
  latencyMs: number;
  lastAt: number;
}

/**
 * Success counters of each key (count, summed latency, last success), gathered by this instance and
 * written together: at most every `everyMs`, and at {@link SuccessTallies.flush}. Statistics only: they
 * never touch a key's status, so a success can't revive an invalid key.
 */
export class SuccessTallies {
  private readonly tallies = new Map<string, SuccessTally>();
  private lastFlush: number;

  constructor(
    private readonly table: StateTable,
    private readonly everyMs: number,
    private readonly now: () => number,
  ) {
    this.lastFlush = now();
  }

  /** Counts one success; writes every counter gathered once the last write is `everyMs` old. */
  async add(group: string, keyId: string, latencyMs: number): Promise<void> {
    this.tally(group, keyId, latencyMs);
    if (this.now() - this.lastFlush >= this.everyMs) await this.flush();
  }

  /** Writes the counters gathered since the last flush (one UpdateItem per key). */
  async flush(): Promise<void> {
    this.lastFlush = this.now();
    const tallies = [...this.tallies.values()];
    this.tallies.clear();
    await Promise.all(
      tallies.map(async (t) => {
        try {
          await this.table.update({
            Key: keyItemKey(t.group, t.keyId),
            ...successCountersWrite(t.count, t.latencyMs, t.lastAt),
          });
        } catch (err) {
          // Put the counts back so the next flush carries them; then let the caller know.
          this.tally(t.group, t.keyId, t.latencyMs, t.count, t.lastAt);
          throw err;
        }
      }),
    );
  }

  private tally(group: string, keyId: string, latencyMs: number, count = 1, lastAt = this.now()): void {
    const id = `${group}\u0000${keyId}`;
    const t = this.tallies.get(id) ?? { group, keyId, count: 0, latencyMs: 0, lastAt };
    t.count += count;
    t.latencyMs += latencyMs;
    t.lastAt = Math.max(t.lastAt, lastAt);
    this.tallies.set(id, t);
  }
}
