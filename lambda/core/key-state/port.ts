/**
 * The key-state port: what the proxy asks of a store (acquire a key, record what it learnt, describe
 * keys) and the shapes it speaks in. The rules those shapes follow live beside it: `key-record.ts` for
 * updates, `rotation.ts` for choosing a key, `quota.ts` for budget windows.
 */

/** A key as selection sees it: usable, found invalid upstream, or switched off by the operator. */
export type KeyStatus = 'active' | 'invalid' | 'disabled';
/**
 * Why a key×model is cooling: per-minute requests, per-minute input tokens, daily quota, quota with no
 * details, the model not in the project's tier at all (`limit: 0`), transient errors, operator.
 */
export type CooldownCause = 'rpm' | 'tpm' | 'rpd' | 'quota' | 'unavailable' | 'transient' | 'operator';

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
  /**
   * Cooldowns by model ('' for model-less calls such as listing models). A Map: model names come from
   * clients, and a plain object would find `constructor` or `toString` on its prototype.
   */
  readonly cooldowns: ReadonlyMap<string, Cooldown>;
  /** The scheduled health check's last answer for this key, if any. */
  readonly lastCheck?: { readonly outcome: string; readonly at: number } | undefined;
}

/** A key as the store sees it: its id, and the quota budget it draws on (its project, or itself). */
export interface KeyRef {
  readonly keyId: string;
  readonly budget: string;
}

/** Proactive quota per budget per model. */
export interface QuotaLimits {
  readonly rpm?: number | undefined;
  readonly rpd?: number | undefined;
  /** Input tokens per minute window. */
  readonly tpm?: number | undefined;
  /** Length of the rpm (and tpm) window in ms (default a minute). */
  readonly windowMs?: number | undefined;
}

/** The metrics Gemini budgets by: requests per minute, input tokens per minute, requests per day. */
export type BudgetMetric = 'rpm' | 'tpm' | 'rpd';

/** Limits Gemini reported for one budget×model, each in force `until` (epoch ms) unless reported again. */
export type LearnedLimits = Partial<Record<BudgetMetric, { readonly limit: number; readonly until: number }>>;

/** What one budget×model has learned, as `/health/detailed` lists it. */
export interface LearnedLimitView {
  readonly budget: string;
  readonly model: string;
  readonly limits: LearnedLimits;
}

export interface AcquireRequest {
  readonly group: string;
  /** The group's keys in rotation order. */
  readonly keys: readonly KeyRef[];
  readonly model: string;
  readonly now: number;
  /** Keys already tried by this request. */
  readonly exclude: ReadonlySet<string>;
  /**
   * The configured limits for this model. A key is handed out only after its budget is claimed against
   * these and what Gemini reported for the budget (learned limits, which the store keeps).
   */
  readonly limits?: QuotaLimits | undefined;
  /** The request's estimated input tokens, claimed with the request where a tpm limit applies. */
  readonly tokens?: number | undefined;
  /** When set, the request also counts against this client's per-minute limit (first acquire only). */
  readonly client?: ClientLimit | undefined;
  /** How long this call may still wait on shared state: what is left of the request's allowance. */
  readonly waitBudgetMs?: number | undefined;
  /** Health scores: keys scoring far below the best usable key are passed over (see `pickKey`). */
  readonly health?: HealthPreference | undefined;
  /**
   * A retry re-claiming budget for the key the request already holds (`keys` lists just that key): the
   * group's rotation is left where it is.
   */
  readonly retry?: boolean | undefined;
}

/** How selection weighs health scores: a key is passed over while it scores below `floor` × the best. */
export interface HealthPreference {
  readonly score: (key: KeyView) => number;
  /** 0–1; 0 turns the preference off. */
  readonly floor: number;
}

export interface ClientLimit {
  /** Hash of the client's token. */
  readonly clientId: string;
  readonly rpm: number;
}

/** A budget claim made with a key: what a later token reconciliation needs. */
export interface BudgetClaim {
  readonly budget: string;
  /** The rpm/tpm window the tokens were counted in, and its length. */
  readonly window: number;
  readonly windowMs: number;
  /** Input tokens claimed. */
  readonly tokens: number;
  /** Claimed in this instance's own budgets (shared state was down or slow): reconciled there only. */
  readonly local?: boolean | undefined;
}

export type Acquisition =
  | { readonly kind: 'key'; readonly keyId: string; readonly claim?: BudgetClaim | undefined }
  /**
   * No key can serve now. `retryAt` is the soonest moment one may (a cooldown ending or a quota window
   * opening), undefined if none will; `cause` says which kind of wait it is.
   */
  | {
      readonly kind: 'unavailable';
      readonly retryAt: number | undefined;
      readonly cause: 'cooling' | 'quota' | 'none';
      /** Some key is parked for the model (Gemini reported `limit: 0`); parks are not in `retryAt`. */
      readonly parked?: boolean | undefined;
      /** The budget limit that held back the key freeing soonest, when `cause` is `quota`. */
      readonly metric?: BudgetMetric | undefined;
      /** Keys were passed over because the request is larger than their whole token window: the largest tpm. */
      readonly overTpm?: number | undefined;
    }
  /** The client is over its own per-minute limit; no key was handed out. */
  | { readonly kind: 'client_limited'; readonly retryAt: number }
  /**
   * The request needs a budget claim and the shared state can't take it now (down, with the outage
   * policy `refuse`, or not answering in time); no key was handed out. `retryAt`: when to try again.
   */
  | { readonly kind: 'state_unavailable'; readonly retryAt: number };

interface UpdateBase {
  readonly group: string;
  readonly keyId: string;
}

export type KeyStateUpdate =
  | (UpdateBase & { readonly kind: 'success'; readonly model: string; readonly latencyMs: number })
  /** Cool a key×model; a store only ever extends a cooldown, never shortens it. */
  | (UpdateBase & { readonly kind: 'cooldown'; readonly model: string; readonly cooldown: Cooldown })
  /** Take a key out of rotation; a disabled key stays disabled. */
  | (UpdateBase & { readonly kind: 'invalid'; readonly reason: string })
  /**
   * Operator switch: `disabled` wins over everything; `active` lifts only a disable. `note`: the operator's
   * words on why (stored with the switch, shown by the CLI; never a decision input).
   */
  | (UpdateBase & {
      readonly kind: 'operator';
      readonly status: 'disabled' | 'active';
      readonly note?: string | undefined;
    })
  /**
   * A health check found the key valid again: active, but only if it is invalid for one of `reasons`
   * (a racing invalid for another reason wins; the operator's disable is untouched either way).
   */
  | (UpdateBase & { readonly kind: 'revive'; readonly reasons: readonly string[] })
  /** Removes cooldowns of the key that ended before `now` (tidying: selection already ignores them). */
  | (UpdateBase & { readonly kind: 'clear_expired'; readonly now: number })
  /** What the scheduled health check saw (valid, quota, transient); feeds the key's health score. */
  | (UpdateBase & { readonly kind: 'checked'; readonly outcome: string; readonly at: number })
  /**
   * A limit Gemini reported (a 429's violation) for the key's budget×model: enforced like a configured one
   * until `until`, replacing what was learned before for that metric.
   */
  | (UpdateBase & {
      readonly kind: 'learned';
      readonly budget: string;
      readonly model: string;
      readonly metric: BudgetMetric;
      readonly limit: number;
      readonly until: number;
    })
  /**
   * Reconciles a claim's input tokens with what Gemini counted: `delta` (actual − estimate) charged to, or
   * refunded from, the window the claim was made in (nothing, once that window has passed).
   */
  | (UpdateBase & {
      readonly kind: 'tokens';
      readonly model: string;
      readonly claim: BudgetClaim;
      readonly delta: number;
    });

/**
 * Where key state, the rotation position and quota windows live. Async so that a shared store
 * (DynamoDB) can implement it with conditional writes; the in-memory store is the default.
 */
export interface KeyStateStore {
  /** Picks the next usable key of a group for a model (claiming its budget when limits are set). */
  acquire(request: AcquireRequest): Promise<Acquisition>;
  /** Records what an upstream call (or an operator) taught about a key. */
  record(update: KeyStateUpdate): Promise<void>;
  /** Current state of the given keys, for `/health/detailed`. */
  describe(group: string, keyIds: readonly string[]): Promise<KeyView[]>;
  /** Writes anything buffered (e.g. success counters); entries call it before they stop. */
  flush(): Promise<void>;
  /**
   * Whether the request will need a budget claim by what this store knows now: configured limits, a
   * client limit, or limits it learned from Gemini for the model (optional: without it, only the first two).
   */
  needsClaim?(request: AcquireRequest): boolean;
  /** Limits learned from Gemini for the budgets of a group, for `/health/detailed` (optional). */
  learned?(group: string, budgets: readonly string[], now: number): Promise<LearnedLimitView[]>;
  /** What this store last knew of cooldowns and statuses, to seed a fallback store (optional). */
  snapshot?(): KeyStateUpdate[];
}
