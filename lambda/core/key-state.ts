/** Key state: the types every store shares, and the pure rotation rule that reads them. */

export type KeyStatus = 'active' | 'invalid' | 'disabled';
/** Why a key×model is cooling: per-minute/short quota, daily quota, quota with no details, transient errors, operator. */
export type CooldownCause = 'rpm' | 'rpd' | 'quota' | 'transient' | 'operator';

export interface Cooldown {
  /** Epoch ms until which the key must not serve the model. */
  readonly until: number;
  readonly cause: CooldownCause;
}

/** One key as a store sees it. Ids are hashes: no store ever holds a raw key. */
export interface KeyView {
  readonly keyId: string;
  readonly status: KeyStatus;
  readonly reason?: string | undefined;
  /** Cooldowns by model ('' for model-less calls such as listing models). */
  readonly cooldowns: Readonly<Record<string, Cooldown>>;
}

export interface AcquireRequest {
  readonly group: string;
  /** The group's keys in rotation order. */
  readonly keyIds: readonly string[];
  readonly model: string;
  readonly now: number;
  /** Keys already tried by this request. */
  readonly exclude: ReadonlySet<string>;
}

export type Acquisition =
  | { readonly kind: 'key'; readonly keyId: string }
  /** No key can serve now; `retryAt` is the soonest cooldown end, undefined if no key will free up. */
  | { readonly kind: 'unavailable'; readonly retryAt: number | undefined };

export type KeyStateUpdate =
  | { readonly kind: 'success'; readonly keyId: string; readonly model: string; readonly latencyMs: number }
  /** Cool a key×model; a store only ever extends a cooldown, never shortens it. */
  | { readonly kind: 'cooldown'; readonly keyId: string; readonly model: string; readonly cooldown: Cooldown }
  /** Take a key out of rotation; `disabled` keys stay disabled. */
  | { readonly kind: 'invalid'; readonly keyId: string; readonly reason: string };

/**
 * Where key state and the rotation position live. Async so that a shared store (DynamoDB) can
 * implement it with conditional writes; the in-memory store is the default.
 */
export interface KeyStateStore {
  /** Picks the next usable key of a group for a model and advances the group's rotation. */
  acquire(request: AcquireRequest): Promise<Acquisition>;
  /** Records what an upstream call taught about a key. */
  record(update: KeyStateUpdate): Promise<void>;
  /** Current state of the given keys, for `/health/detailed`. */
  describe(keyIds: readonly string[]): Promise<KeyView[]>;
}

/** True when the key may serve `model` at `now`. */
export function isUsable(key: KeyView, model: string, now: number): boolean {
  if (key.status !== 'active') return false;
  const cooldown = key.cooldowns[model];
  return cooldown === undefined || cooldown.until <= now;
}

/**
 * Round-robin from `start`: the first usable key not excluded, or the soonest time one frees up.
 * Returns the chosen index so a store can continue the rotation after it.
 */
export function pickKey(
  keys: readonly KeyView[],
  start: number,
  model: string,
  now: number,
  exclude: ReadonlySet<string>,
): { keyId: string; index: number } | { retryAt: number | undefined } {
  const n = keys.length;
  let retryAt: number | undefined;
  for (let i = 0; i < n; i++) {
    const index = (((start + i) % n) + n) % n;
    const key = keys[index]!;
    if (key.status !== 'active') continue;
    const cooldown = key.cooldowns[model];
    if (cooldown !== undefined && cooldown.until > now) {
      retryAt = retryAt === undefined ? cooldown.until : Math.min(retryAt, cooldown.until);
      continue;
    }
    if (!exclude.has(key.keyId)) return { keyId: key.keyId, index };
  }
  return { retryAt };
}
