/**
 * DynamoDB calls of a benchmarked proxy, classified by what they do and attributed to the client request
 * that made them, so the bench can tell the calls a request waits for (synchronous: on its path to
 * Gemini) from those it leaves behind (asynchronous: state writes that finish after it was answered).
 *
 * Classified by command and by key and update expression, as the store writes them
 * (`lambda/adapters/state/dynamodb/*`):
 *
 * | kind | call | path |
 * |---|---|---|
 * | `claim` | UpdateItem `quota#…` (the conditional request/token claim) | sync |
 * | `client_claim` | UpdateItem `client#…` | sync |
 * | `rotation` | UpdateItem `rr#…` (rotation counter) | sync |
 * | `group_read` | Query (a group's partition: statuses, cooldowns, learned limits) | sync |
 * | `survey` | BatchGetItem (the other budgets' windows after a refused claim) | sync |
 * | `claim_conflict_read` | GetItem `quota#…`: the item a claim lost to, on an engine that does not return it (`ALL_OLD`; dynalite) | sync |
 * | `reconcile` | UpdateItem `quota#…` `ADD #t :delta` (tokens charged/refunded after the answer) | async |
 * | `cooldown` | UpdateItem `grp#…`/`cool#…` | async |
 * | `learned` | UpdateItem `grp#…`/`learn#…` | async |
 * | `success_counters` | UpdateItem `grp#…`/`key#…` with the success counters | async |
 * | `status` | other UpdateItem `grp#…`/`key#…` (invalid, revive, operator, health check) | async |
 * | `write_conflict_read` | GetItem of a `grp#…` item a write lost to | async |
 * | `cooldown_delete` | DeleteItem | async |
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type http from 'node:http';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';

export type CallKind =
  | 'claim'
  | 'client_claim'
  | 'rotation'
  | 'group_read'
  | 'survey'
  | 'claim_conflict_read'
  | 'reconcile'
  | 'cooldown'
  | 'learned'
  | 'success_counters'
  | 'status'
  | 'write_conflict_read'
  | 'cooldown_delete'
  | 'other';

/** The kinds a request waits for before its Gemini call (or its refusal). */
export const SYNC_KINDS: ReadonlySet<CallKind> = new Set<CallKind>([
  'claim',
  'client_claim',
  'rotation',
  'group_read',
  'survey',
  'claim_conflict_read',
]);

/** One DynamoDB call: its kind and when it ran (performance.now()). */
export interface TracedCall {
  readonly kind: CallKind;
  /** A claim that starts a new window (`SET #mw = :mw …`) rather than counting in the current one. */
  readonly newWindow: boolean;
  readonly start: number;
  end: number;
  /** DynamoDB refused it (a failed condition, mostly). */
  failed: boolean;
}

/** The calls made on behalf of one client request (its `x-bench-id`). */
export interface RequestTrace {
  readonly id: string;
  readonly calls: TracedCall[];
  /** Times the proxy asked its key-state store for a key for this request. */
  acquires: number;
  /** Of those, answered from the instance's local store (the shared one too slow, or down). */
  localAcquires: number;
}

/** A string attribute, marshalled (`{ S }`) or not. */
const str = (v: unknown): string =>
  typeof v === 'string' ? v : typeof v === 'object' && v !== null && 'S' in v ? String(v.S) : '';

/** The kind of a call, from its command name and input (see the table above). */
export function classify(command: string, input: Record<string, unknown>): CallKind {
  const key = (input.Key ?? {}) as Record<string, unknown>;
  const pk = str(key.pk);
  const sk = str(key.sk);
  switch (command) {
    case 'QueryCommand':
      return 'group_read';
    case 'BatchGetItemCommand':
      return 'survey';
    case 'GetItemCommand':
      return pk.startsWith('quota#') ? 'claim_conflict_read' : 'write_conflict_read';
    case 'DeleteItemCommand':
      return 'cooldown_delete';
    case 'UpdateItemCommand': {
      const expression = str(input.UpdateExpression);
      if (pk.startsWith('rr#')) return 'rotation';
      if (pk.startsWith('client#')) return 'client_claim';
      if (pk.startsWith('quota#')) return expression.trim() === 'ADD #t :delta' ? 'reconcile' : 'claim';
      if (sk.startsWith('cool#')) return 'cooldown';
      if (sk.startsWith('learn#')) return 'learned';
      if (sk.startsWith('key#')) return expression.includes('#ok') ? 'success_counters' : 'status';
      return 'other';
    }
    default:
      return 'other';
  }
}

/** Number of sequential round trips in a set of calls: overlapping calls (sent together) count once. */
export function roundTrips(calls: readonly TracedCall[]): number {
  const sorted = [...calls].sort((a, b) => a.start - b.start);
  let trips = 0;
  let until = -Infinity;
  for (const c of sorted) {
    if (c.start >= until) trips++;
    until = Math.max(until, c.end);
  }
  return trips;
}

/**
 * Traces the DynamoDB calls of proxies: `instrument` each store's client, `attach` each proxy's HTTP
 * server (its request handler then runs in the context of the request's `x-bench-id`).
 */
export class CallTracer {
  private readonly context = new AsyncLocalStorage<RequestTrace>();
  /** Traces by request id, for the requests of the current run. */
  readonly requests = new Map<string, RequestTrace>();
  /** Calls made outside any client request (e.g. a flush at shutdown). */
  readonly unattributed: TracedCall[] = [];

  instrument(client: DynamoDBClient): void {
    client.middlewareStack.add(
      (next, context) => async (args) => {
        const input = args.input as Record<string, unknown>;
        const call: TracedCall = {
          kind: classify(context.commandName ?? '', input),
          newWindow: str(input.UpdateExpression).startsWith('SET #mw = :mw'),
          start: performance.now(),
          end: Number.NaN,
          failed: false,
        };
        (this.context.getStore()?.calls ?? this.unattributed).push(call);
        try {
          return await next(args);
        } catch (err) {
          call.failed = true;
          throw err;
        } finally {
          call.end = performance.now();
        }
      },
      { step: 'initialize', name: 'benchCallTracer' },
    );
  }

  attach(server: http.Server): void {
    const handlers = server.listeners('request') as Array<(...args: unknown[]) => void>;
    server.removeAllListeners('request');
    server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
      const id = req.headers['x-bench-id'];
      if (typeof id !== 'string') {
        for (const h of handlers) h(req, res);
        return;
      }
      const trace: RequestTrace = { id, calls: [], acquires: 0, localAcquires: 0 };
      this.requests.set(id, trace);
      this.context.run(trace, () => {
        for (const h of handlers) h(req, res);
      });
    });
  }

  /** The store, its acquisitions counted per request (as `acquires`, or `localAcquires`). */
  countAcquires<T extends { acquire(...args: never[]): unknown }>(
    store: T,
    field: 'acquires' | 'localAcquires' = 'acquires',
  ): T {
    const context = this.context;
    return new Proxy(store, {
      get(target, prop) {
        const value = Reflect.get(target, prop, target) as unknown;
        if (typeof value !== 'function') return value;
        if (prop !== 'acquire') return value.bind(target);
        return (...args: never[]) => {
          const trace = context.getStore();
          if (trace !== undefined) trace[field]++;
          return target.acquire(...args);
        };
      },
    });
  }

  reset(): void {
    this.requests.clear();
    this.unattributed.length = 0;
  }
}
