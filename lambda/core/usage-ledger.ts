/**
 * Usage accounting: what each client, key and model used per Pacific day (requests, errors, tokens). The
 * port the proxy writes to ({@link UsageLedger}), the one it is read through ({@link UsageSource}), and the
 * summing both implementations share ({@link UsageTally}). Never a raw key or token: keys by key id,
 * clients by client id (a hash prefix) and the name the operator gave the token.
 */
import type { Caller } from './credentials.js';
import { pacificDay } from './pacific-time.js';

/** What one forwarded request ended as, as the proxy hands it to the ledger. */
export interface UsageEvent {
  /** When the request ended (epoch ms): its Pacific day is the day it counts on. */
  readonly at: number;
  /** The client whose token the request carried; undefined when the proxy runs without tokens. */
  readonly client: Caller | undefined;
  /** The key of the request's last Gemini call; undefined when the proxy refused it before any call. */
  readonly keyId: string | undefined;
  /** '' for calls that name no model. */
  readonly model: string;
  readonly status: number;
  /** Why a relayed stream ended early, if it did (`client_gone`, `deadline`, `upstream_failed`). */
  readonly streamError?: string | undefined;
  /** What Gemini reported of a complete answer. */
  readonly tokens: { readonly input: number; readonly output: number } | undefined;
}

export interface UsageCounts {
  requests: number;
  errors: number;
  inputTokens: number;
  outputTokens: number;
}

/** One day × client × key × model and its counts, as stored and read. */
export interface UsageRecord extends UsageCounts {
  /** Pacific day, `YYYY-MM-DD`. */
  readonly day: string;
  /** The client's id, {@link NO_CLIENT} without a token. */
  readonly clientId: string;
  /** The client's name, where the operator gave one. */
  clientName: string | undefined;
  /** The key's id, {@link NO_KEY} for a request refused before any Gemini call. */
  readonly keyId: string;
  /** The model, {@link NO_MODEL} for a call that names none, {@link OTHER_MODEL} past the cap. */
  readonly model: string;
}

/** Where the proxy counts each forwarded request. `add` never throws and never waits. */
export interface UsageLedger {
  add(event: UsageEvent): void;
  /**
   * Writes what was counted so far; resolves (never rejects) once written or kept for the next flush, or
   * once a shared store's bound on the wait has passed (the writes go on).
   */
  flush(): Promise<void>;
  /** Writes what was counted and waits for every write to end, however long (a process stopping). */
  close?(): Promise<void>;
}

/** Where usage is read from: one Pacific day's records. */
export interface UsageSource {
  read(day: string): Promise<UsageRecord[]>;
}

export const NO_CLIENT = '-';
export const NO_KEY = '-';
export const NO_MODEL = '-';
/** Where a new model's counts go once a tally holds `capacity` combinations (not a model name's spelling). */
export const OTHER_MODEL = '(other)';
/** How long usage is kept after its day. */
export const USAGE_RETENTION_DAYS = 90;

/** Stream endings that are the proxy's or Gemini's failure (a client that left is not). */
const FAILED_STREAMS = new Set(['deadline', 'upstream_failed']);

/**
 * An error, as usage counts it: any answer of 400 or more (Gemini's errors passed on and the forwarder's own
 * refusals: 429 client or keys exhausted, 503, 504), and a stream Gemini or the deadline cut short.
 */
export function isUsageError(status: number, streamError: string | undefined): boolean {
  return status >= 400 || (streamError !== undefined && FAILED_STREAMS.has(streamError));
}

const combination = (day: string, clientId: string, keyId: string, model: string) =>
  `${day}#${clientId}#${keyId}#${model}`;

/**
 * Counts summed per day × client × key × model, at most `capacity` combinations: past it, a new model's
 * counts go to {@link OTHER_MODEL} of its client and key (clients and keys are configured; models can be
 * names a client made up), so memory stays bounded even while writes keep failing.
 */
export class UsageTally {
  private readonly records = new Map<string, UsageRecord>();

  constructor(readonly capacity = 10_000) {}

  get size(): number {
    return this.records.size;
  }

  add(event: UsageEvent): void {
    this.merge({
      day: pacificDay(event.at),
      clientId: event.client?.clientId ?? NO_CLIENT,
      clientName: event.client?.name,
      keyId: event.keyId ?? NO_KEY,
      model: event.model === '' ? NO_MODEL : event.model,
      requests: 1,
      errors: isUsageError(event.status, event.streamError) ? 1 : 0,
      inputTokens: event.tokens?.input ?? 0,
      outputTokens: event.tokens?.output ?? 0,
    });
  }

  /** Adds a record's counts (a request's, or a batch a failed write gives back). */
  merge(record: UsageRecord): void {
    const { day, clientId, keyId } = record;
    let id = combination(day, clientId, keyId, record.model);
    let model = record.model;
    if (!this.records.has(id) && this.records.size >= this.capacity) {
      model = OTHER_MODEL;
      id = combination(day, clientId, keyId, model);
    }
    const sum = this.records.get(id);
    if (sum === undefined) {
      this.records.set(id, { ...record, model });
      return;
    }
    sum.requests += record.requests;
    sum.errors += record.errors;
    sum.inputTokens += record.inputTokens;
    sum.outputTokens += record.outputTokens;
    sum.clientName = record.clientName ?? sum.clientName;
  }

  /** Every record, as summed so far. */
  all(): UsageRecord[] {
    return [...this.records.values()];
  }

  /** Every record, leaving the tally empty. */
  drain(): UsageRecord[] {
    const out = this.all();
    this.records.clear();
    return out;
  }

  /** Drops the records of days before `day` (`YYYY-MM-DD`). */
  dropBefore(day: string): void {
    for (const [id, r] of this.records) if (r.day < day) this.records.delete(id);
  }
}

/** The Pacific day `n` calendar days before `day` (both `YYYY-MM-DD`). */
export function daysBefore(day: string, n: number): string {
  const [y, m, d] = day.split('-').map(Number) as [number, number, number];
  return new Date(Date.UTC(y, m - 1, d - n)).toISOString().slice(0, 10);
}
