/**
 * The shared key state (the stack's table, or the local config's `state` table) as the operator sees and
 * changes it: items read with the store's own translation (`key-items.ts`), the operator's switch written
 * by the store itself (`record({ kind: 'operator' })`: the same write every proxy's store makes), and a
 * key's cooldowns and parks deleted on `reset`.
 */
import { DescribeTableCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DeleteCommand, DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { groupPk, readGroupItem } from '../adapters/state/dynamodb/key-items.js';
import { DynamoDbKeyStateStore } from '../adapters/state/dynamodb/store.js';
import { StateTable, str } from '../adapters/state/dynamodb/table.js';
import { isCooling } from '../core/key-state/cooldown.js';
import { type KeyRecord, newKeyRecord, toView } from '../core/key-state/key-record.js';
import type { CooldownCause, KeyStateStore, KeyStatus } from '../core/key-state/port.js';

/** A key's shared state, as `keys list` shows it. */
export interface KeyState {
  readonly status: KeyStatus;
  /** Why the key is invalid (Gemini's reason), when it is. */
  readonly reason: string | undefined;
  /** The operator's words when disabling it, if any. */
  readonly note: string | undefined;
  /** Cooldowns and parks still running, by model ('' for model-less calls). */
  readonly cooldowns: ReadonlyArray<{ model: string; cause: CooldownCause; until: number }>;
  readonly lastCheck: { readonly outcome: string; readonly at: number } | undefined;
}

/** Where the shared state is: a DynamoDB client and the table's name. */
export interface StateAccess {
  readonly client: DynamoDBClient;
  readonly table: string;
}

export class KeyStateTable {
  private readonly table: StateTable;
  private readonly doc: DynamoDBDocumentClient;
  private readonly store: DynamoDbKeyStateStore;

  constructor(
    /** The table and its client (e.g. for a usage report reading the same table). */
    readonly access: StateAccess,
  ) {
    this.table = new StateTable(access.client, access.table);
    this.doc = DynamoDBDocumentClient.from(access.client);
    // Its cache is never relied on: every call of the CLI reads afresh.
    this.store = new DynamoDbKeyStateStore({
      client: access.client,
      table: access.table,
      cacheMs: 0,
      rotationShards: 1,
    });
  }

  get name(): string {
    return this.access.table;
  }

  /** The table as a proxy's store sees it (for a health check run here). */
  get keyStore(): KeyStateStore {
    return this.store;
  }

  /** Throws when the table can't be reached (or doesn't exist). */
  async ping(): Promise<void> {
    await this.access.client.send(new DescribeTableCommand({ TableName: this.access.table }));
  }

  /** The state of every key the table knows in a group (a key it doesn't know is active, not cooling). */
  async group(group: string, now: number): Promise<Map<string, KeyState>> {
    const records = new Map<string, KeyRecord>();
    const notes = new Map<string, string>();
    const record = (keyId: string) => {
      let r = records.get(keyId);
      if (r === undefined) {
        r = newKeyRecord(keyId);
        records.set(keyId, r);
      }
      return r;
    };
    for (const item of await this.table.query(groupPk(group))) {
      readGroupItem(item, record);
      const sk = str(item.sk) ?? '';
      const note = str(item.disabledNote);
      if (sk.startsWith('key#') && note !== undefined) notes.set(sk.slice(4), note);
    }
    const states = new Map<string, KeyState>();
    for (const [keyId, r] of records) {
      const view = toView(r);
      states.set(keyId, {
        status: view.status,
        reason: r.validity === 'invalid' ? r.reason : undefined,
        note: r.disabled ? notes.get(keyId) : undefined,
        cooldowns: [...r.cooldowns]
          .filter(([, c]) => isCooling(c, now))
          .map(([model, c]) => ({ model, cause: c.cause, until: c.until }))
          .sort((a, b) => a.model.localeCompare(b.model)),
        lastCheck: r.lastCheck,
      });
    }
    return states;
  }

  /** The operator's switch, as every proxy's store writes it. */
  operator(group: string, keyId: string, status: 'disabled' | 'active', note?: string): Promise<void> {
    return this.store.record({ kind: 'operator', group, keyId, status, note });
  }

  /** Deletes every cooldown and park of a key (all models, running or ended); returns how many there were. */
  async reset(group: string, keyId: string, budget?: string): Promise<number> {
    const prefixes = [`cool#${keyId}#`, ...(budget === undefined ? [] : [`learn#${budget}#`])];
    const items = (await this.table.query(groupPk(group))).filter((i) =>
      prefixes.some((prefix) => str(i.sk)?.startsWith(prefix)),
    );
    for (const item of items) {
      await this.doc.send(
        new DeleteCommand({ TableName: this.access.table, Key: { pk: item.pk, sk: item.sk } }),
      );
    }
    return items.length;
  }
}
