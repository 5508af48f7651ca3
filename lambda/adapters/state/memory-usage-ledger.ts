import { pacificDay } from '../../core/pacific-time.js';
import {
  daysBefore,
  USAGE_RETENTION_DAYS,
  type UsageEvent,
  type UsageLedger,
  type UsageRecord,
  type UsageSource,
  UsageTally,
} from '../../core/usage-ledger.js';

/**
 * Usage counted in this process only (`state.store: memory`): summed as requests end, readable at once,
 * gone with the process. Days older than the retention are dropped as new days begin.
 */
export class MemoryUsageLedger implements UsageLedger, UsageSource {
  private readonly tally: UsageTally;
  private today = '';

  constructor(capacity?: number) {
    this.tally = new UsageTally(capacity);
  }

  add(event: UsageEvent): void {
    const day = pacificDay(event.at);
    if (day !== this.today) {
      this.today = day;
      this.tally.dropBefore(daysBefore(day, USAGE_RETENTION_DAYS));
    }
    this.tally.add(event);
  }

  /** Nothing to write: the counts are already where they are read. */
  async flush(): Promise<void> {}

  async read(day: string): Promise<UsageRecord[]> {
    return this.tally
      .all()
      .filter((r) => r.day === day)
      .map((r) => ({ ...r }));
  }
}
