// The fake Gemini's quota plan: Gemini's quotas per Google project × model (requests per minute, input
// tokens per minute, requests per day), and its 429s as Gemini writes them. Node built-ins only.

/** Limits of one model in one project; an absent metric is unlimited, 0 means "not in the tier". */
export interface ModelQuota {
  readonly rpm?: number;
  readonly tpm?: number;
  readonly rpd?: number;
}

export interface QuotaPlan {
  /** Project → its keys. A key not listed is its own project (named by the key). */
  readonly projects?: Record<string, string[]>;
  /** Limits per model (bare name, e.g. `gemini-2.5-flash`) for every project; other models are unlimited. */
  readonly models: Record<string, ModelQuota>;
  /** Per-project overrides, merged over `models` metric by metric (e.g. `{ rpm: 0 }`: not in the tier). */
  readonly projectModels?: Record<string, Record<string, ModelQuota>>;
  /** The "minute" window. @default 60000 */
  readonly windowMs?: number;
  /** The "day" window. @default the Pacific calendar day */
  readonly dayMs?: number;
  /** Quota ids get `-FreeTier` and free-tier metric names; `paid` also sends `quotaValue`. @default 'free' */
  readonly tier?: 'free' | 'paid';
  /** Multiplies the input tokens the fake counts (and reports), so an estimate can differ. @default 1 */
  readonly tokenFactor?: number;
}

export type PlanMetric = 'rpm' | 'tpm' | 'rpd';

/** One 429 the plan produced. */
export interface QuotaRefusal {
  readonly project: string;
  readonly model: string;
  /** Every violated metric, in the order the 429 lists them. */
  readonly metrics: PlanMetric[];
  /** The minute-window index (`floor(time / windowMs)`). */
  readonly window: number;
  /** Epoch ms. */
  readonly at: number;
}

export interface PlanUsage {
  readonly minuteRequests: number;
  readonly minuteTokens: number;
  readonly dayRequests: number;
}

interface Counters {
  minute: number;
  minuteRequests: number;
  minuteTokens: number;
  day: string;
  dayRequests: number;
}

const API = 'generativelanguage.googleapis.com';
const QUOTAS: Record<'free' | 'paid', Record<PlanMetric, { quotaId: string; metric: string }>> = {
  free: {
    tpm: {
      quotaId: 'GenerateContentInputTokensPerModelPerMinute-FreeTier',
      metric: `${API}/generate_content_free_tier_input_token_count`,
    },
    rpm: {
      quotaId: 'GenerateRequestsPerMinutePerProjectPerModel-FreeTier',
      metric: `${API}/generate_content_free_tier_requests`,
    },
    rpd: {
      quotaId: 'GenerateRequestsPerDayPerProjectPerModel-FreeTier',
      metric: `${API}/generate_content_free_tier_requests`,
    },
  },
  paid: {
    tpm: {
      quotaId: 'GenerateContentPaidTierInputTokensPerModelPerMinute',
      metric: `${API}/generate_content_paid_tier_input_token_count`,
    },
    rpm: {
      quotaId: 'GenerateRequestsPerMinutePerProjectPerModel',
      metric: `${API}/generate_requests_per_model`,
    },
    rpd: {
      quotaId: 'GenerateRequestsPerDayPerProjectPerModel',
      metric: `${API}/generate_requests_per_model_per_day`,
    },
  },
};
const INTRO =
  'You exceeded your current quota, please check your plan and billing details. For more information on this ' +
  'error, head to: https://ai.google.dev/gemini-api/docs/rate-limits. To monitor your current usage, head to: ' +
  'https://ai.dev/rate-limit. ';
const IMAGE_TOKENS = 258;
const pacificDay = new Intl.DateTimeFormat('en-CA', { timeZone: 'America/Los_Angeles' });

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

/** Text characters and image parts of one prompt part, OpenAI or native. */
function tallyPart(part: unknown, tally: { chars: number; images: number }): void {
  if (typeof part === 'string') tally.chars += part.length;
  if (!isRecord(part)) return;
  if (typeof part.text === 'string') tally.chars += part.text.length;
  if (part.type === 'image_url' || isRecord(part.image_url)) tally.images++;
  for (const blob of [part.inlineData, part.inline_data, part.fileData, part.file_data]) {
    const mime = isRecord(blob) ? (blob.mimeType ?? blob.mime_type) : undefined;
    if (typeof mime === 'string' && mime.startsWith('image/')) tally.images++;
  }
}

function tallyContent(content: unknown, tally: { chars: number; images: number }): void {
  if (typeof content === 'string') tally.chars += content.length;
  else if (Array.isArray(content)) for (const p of content) tallyPart(p, tally);
  else if (isRecord(content)) for (const p of list(content.parts)) tallyPart(p, tally);
}

/**
 * The input tokens the fake counts for a request body ("actual"): ceil(text characters / 4) of the prompt
 * text plus 258 per image part — OpenAI `messages[].content`, `prompt`, `input`; native `contents`,
 * `systemInstruction`, `content` (embeddings), `requests` and `generateContentRequest` — times `factor`.
 */
export function countInputTokens(body: unknown, factor = 1): number {
  const tally = { chars: 0, images: 0 };
  const visit = (b: unknown): void => {
    if (!isRecord(b)) return;
    for (const m of list(b.messages)) if (isRecord(m)) tallyContent(m.content, tally);
    for (const field of [b.prompt, b.input]) {
      for (const x of Array.isArray(field) ? field : [field])
        if (typeof x === 'string') tally.chars += x.length;
    }
    for (const c of list(b.contents)) tallyContent(c, tally);
    tallyContent(b.systemInstruction ?? b.system_instruction, tally);
    tallyContent(b.content, tally);
    for (const r of list(b.requests)) visit(r);
    visit(b.generateContentRequest);
  };
  visit(body);
  return Math.ceil((Math.ceil(tally.chars / 4) + IMAGE_TOKENS * tally.images) * factor);
}

/** Gemini's delay format: seconds with nanosecond digits, e.g. "38.863719904s". */
const duration = (ms: number) => `${(Math.max(ms, 0.001) / 1000).toFixed(9)}s`;

/** The quota plan's state: counters per project × model, and the 429s it produced. */
export class QuotaPlanner {
  plan: QuotaPlan | undefined;
  readonly refusals: QuotaRefusal[] = [];
  private readonly counters = new Map<string, Counters>();

  projectOf(key: string): string {
    for (const [project, keys] of Object.entries(this.plan?.projects ?? {})) {
      if (keys.includes(key)) return project;
    }
    return key;
  }

  /** The limits of `model` in `project`, or undefined when the plan limits nothing there. */
  quotaOf(project: string, model: string): ModelQuota | undefined {
    const base = this.plan?.models[model];
    const own = this.plan?.projectModels?.[project]?.[model];
    return base === undefined && own === undefined ? undefined : { ...base, ...own };
  }

  usageOf(project: string, model: string, now = Date.now()): PlanUsage {
    const { minuteRequests, minuteTokens, dayRequests } = this.current(project, model, now);
    return { minuteRequests, minuteTokens, dayRequests };
  }

  /**
   * Admits one request of `tokens` input tokens for `key` × `model` at `now` (epoch ms, fractional):
   * counts it and returns undefined, or returns the 429 body listing every quota it would exceed.
   */
  admit(key: string, model: string, tokens: number, now: number): object | undefined {
    const project = this.projectOf(key);
    const quota = this.quotaOf(project, model);
    if (quota === undefined) return undefined;
    const c = this.current(project, model, now);
    const over: Array<[PlanMetric, number]> = [];
    if (quota.tpm !== undefined && c.minuteTokens + tokens > quota.tpm) over.push(['tpm', quota.tpm]);
    if (quota.rpm !== undefined && c.minuteRequests + 1 > quota.rpm) over.push(['rpm', quota.rpm]);
    if (quota.rpd !== undefined && c.dayRequests + 1 > quota.rpd) over.push(['rpd', quota.rpd]);
    if (over.length === 0) {
      c.minuteRequests++;
      c.minuteTokens += tokens;
      c.dayRequests++;
      return undefined;
    }
    const windowMs = this.windowMs;
    this.refusals.push({ project, model, metrics: over.map(([m]) => m), window: c.minute, at: Date.now() });
    return this.quotaError(model, over, duration((c.minute + 1) * windowMs - now));
  }

  reset(): void {
    this.plan = undefined;
    this.refusals.length = 0;
    this.counters.clear();
  }

  private get windowMs(): number {
    return this.plan?.windowMs ?? 60_000;
  }

  private current(project: string, model: string, now: number): Counters {
    const minute = Math.floor(now / this.windowMs);
    const dayMs = this.plan?.dayMs;
    const day = dayMs === undefined ? pacificDay.format(now) : String(Math.floor(now / dayMs));
    const id = `${project}\u0000${model}`;
    let c = this.counters.get(id);
    if (c === undefined) {
      c = { minute, minuteRequests: 0, minuteTokens: 0, day, dayRequests: 0 };
      this.counters.set(id, c);
    }
    if (c.minute !== minute) Object.assign(c, { minute, minuteRequests: 0, minuteTokens: 0 });
    if (c.day !== day) Object.assign(c, { day, dayRequests: 0 });
    return c;
  }

  private quotaError(model: string, over: Array<[PlanMetric, number]>, retryDelay: string): object {
    const tier = this.plan?.tier ?? 'free';
    const violations = over.map(([metric, limit]) => ({
      quotaMetric: QUOTAS[tier][metric].metric,
      quotaId: QUOTAS[tier][metric].quotaId,
      quotaDimensions: { location: 'global', model },
      ...(tier === 'paid' ? { quotaValue: String(limit) } : {}),
    }));
    const lines = over.map(
      ([metric, limit]) =>
        `* Quota exceeded for metric: ${QUOTAS[tier][metric].metric}, limit: ${limit}, model: ${model}\n`,
    );
    return {
      error: {
        code: 429,
        message: `${INTRO}\n${lines.join('')}Please retry in ${retryDelay}.`,
        status: 'RESOURCE_EXHAUSTED',
        details: [
          { '@type': 'type.googleapis.com/google.rpc.QuotaFailure', violations },
          {
            '@type': 'type.googleapis.com/google.rpc.Help',
            links: [
              {
                description: 'Learn more about Gemini API quotas',
                url: 'https://ai.google.dev/gemini-api/docs/rate-limits',
              },
            ],
          },
          { '@type': 'type.googleapis.com/google.rpc.RetryInfo', retryDelay },
        ],
      },
    };
  }
}
