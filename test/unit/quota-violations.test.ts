import { describe, expect, it } from 'vitest';
import { classifyUpstreamResponse, type QuotaViolation } from '../../lambda/core/gemini-errors.js';
import { classifyQuota, MAX_VIOLATIONS } from '../../lambda/core/quota-violations.js';

// Bodies shaped as Gemini sends them (../shared/FIELD-NOTES.md "Gemini API").
const API = 'generativelanguage.googleapis.com';
const FREE_REQUESTS = `${API}/generate_content_free_tier_requests`;
const FREE_TOKENS = `${API}/generate_content_free_tier_input_token_count`;
const PAID_TOKENS = `${API}/generate_content_paid_tier_input_token_count`;
const PAID_REQUESTS = `${API}/generate_requests_per_model`;
const PAID_DAY = `${API}/generate_requests_per_model_per_day`;
const RPM_FREE = 'GenerateRequestsPerMinutePerProjectPerModel-FreeTier';
const RPD_FREE = 'GenerateRequestsPerDayPerProjectPerModel-FreeTier';
const TPM_FREE = 'GenerateContentInputTokensPerModelPerMinute-FreeTier';
const TPD_FREE = 'GenerateContentInputTokensPerModelPerDay-FreeTier';
const FLASH = 'gemini-2.5-flash';
const PRO = 'gemini-2.5-pro';

const INTRO =
  'You exceeded your current quota, please check your plan and billing details. For more information on ' +
  'this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits. To monitor your current usage, ' +
  'head to: https://ai.dev/usage?tab=rate-limit. ';
const line = (metric: string, limit: number, model: string) =>
  `\n* Quota exceeded for metric: ${metric}, limit: ${limit}, model: ${model}`;
const message = (lines: string[], retry: string) => `${INTRO}${lines.join('')}\nPlease retry in ${retry}.`;

interface RawViolation {
  quotaMetric?: unknown;
  quotaId?: unknown;
  quotaDimensions?: unknown;
  quotaValue?: unknown;
}
const violation = (quotaMetric: string, quotaId: string, model: string, quotaValue?: string) => ({
  quotaMetric,
  quotaId,
  quotaDimensions: { location: 'global', model },
  ...(quotaValue === undefined ? {} : { quotaValue }),
});
const HELP = {
  '@type': 'type.googleapis.com/google.rpc.Help',
  links: [
    {
      description: 'Learn more about Gemini API quotas',
      url: 'https://ai.google.dev/gemini-api/docs/rate-limits',
    },
  ],
};
const body = (msg: string, violations: RawViolation[] | undefined, retryDelay?: string): string =>
  JSON.stringify({
    error: {
      code: 429,
      message: msg,
      status: 'RESOURCE_EXHAUSTED',
      details: [
        HELP,
        ...(violations === undefined
          ? []
          : [{ '@type': 'type.googleapis.com/google.rpc.QuotaFailure', violations }]),
        ...(retryDelay === undefined
          ? []
          : [{ '@type': 'type.googleapis.com/google.rpc.RetryInfo', retryDelay }]),
      ],
    },
  });
const v = (
  metric: QuotaViolation['metric'],
  limit: number | undefined,
  model: string | undefined,
  quotaId = '',
): QuotaViolation => ({ metric, limit, model, quotaId });

interface Case {
  readonly body: string;
  readonly scope: 'day' | 'short';
  readonly retryDelayMs: number | undefined;
  readonly violations: QuotaViolation[];
  readonly unavailable: boolean;
}

const SEVERAL = body(
  message(
    [line(FREE_TOKENS, 250_000, FLASH), line(FREE_REQUESTS, 10, FLASH), line(FREE_REQUESTS, 250, FLASH)],
    '38.863719904s',
  ),
  [
    violation(FREE_TOKENS, TPM_FREE, FLASH),
    violation(FREE_REQUESTS, RPM_FREE, FLASH),
    violation(FREE_REQUESTS, RPD_FREE, FLASH),
  ],
  '38.863719904s',
);

const cases: Record<string, Case> = {
  'one per-minute violation, its limit from the message': {
    body: body(
      message([line(FREE_REQUESTS, 10, FLASH)], '47.434392449s'),
      [violation(FREE_REQUESTS, RPM_FREE, FLASH)],
      '38s',
    ),
    scope: 'short',
    retryDelayMs: 38_000,
    violations: [v('rpm', 10, FLASH, RPM_FREE)],
    unavailable: false,
  },
  'rpm + tpm + rpd for one model, limits paired in order by metric': {
    body: SEVERAL,
    scope: 'day',
    retryDelayMs: 38_864,
    violations: [
      v('tpm', 250_000, FLASH, TPM_FREE),
      v('rpm', 10, FLASH, RPM_FREE),
      v('rpd', 250, FLASH, RPD_FREE),
    ],
    unavailable: false,
  },
  'limit 0 in the message only (no QuotaFailure)': {
    body: body(
      message(
        [
          line(FREE_TOKENS, 0, PRO),
          line(FREE_REQUESTS, 0, PRO),
          line(FREE_REQUESTS, 0, PRO),
          line(FREE_TOKENS, 0, PRO),
        ],
        '38.863719904s',
      ),
      undefined,
    ),
    scope: 'short',
    retryDelayMs: 38_864,
    violations: [v('tpm', 0, PRO), v('unknown', 0, PRO), v('unknown', 0, PRO), v('tpm', 0, PRO)],
    unavailable: true,
  },
  'limit 0 in quotaValue "0" (a day quota of 0 is no spent day)': {
    body: body(
      message([line(FREE_REQUESTS, 0, PRO), line(FREE_REQUESTS, 0, PRO)], '40.1s'),
      [violation(FREE_REQUESTS, RPM_FREE, PRO, '0'), violation(FREE_REQUESTS, RPD_FREE, PRO, '0')],
      '40.1s',
    ),
    scope: 'short',
    retryDelayMs: 40_100,
    violations: [v('rpm', 0, PRO, RPM_FREE), v('rpd', 0, PRO, RPD_FREE)],
    unavailable: true,
  },
  'paid-tier ids with quotaValue and no message lines': {
    body: body(
      INTRO,
      [
        violation(PAID_TOKENS, 'GenerateContentPaidTierInputTokensPerModelPerMinute', PRO, '2000000'),
        violation(PAID_REQUESTS, 'GenerateRequestsPerMinutePerProjectPerModel', PRO, '150'),
      ],
      '2s',
    ),
    scope: 'short',
    retryDelayMs: 2000,
    violations: [
      v('tpm', 2_000_000, PRO, 'GenerateContentPaidTierInputTokensPerModelPerMinute'),
      v('rpm', 150, PRO, 'GenerateRequestsPerMinutePerProjectPerModel'),
    ],
    unavailable: false,
  },
  'paid-tier day quota': {
    body: body(
      INTRO,
      [violation(PAID_DAY, 'GenerateRequestsPerDayPerProjectPerModel', FLASH, '10000')],
      '20s',
    ),
    scope: 'day',
    retryDelayMs: 20_000,
    violations: [v('rpd', 10_000, FLASH, 'GenerateRequestsPerDayPerProjectPerModel')],
    unavailable: false,
  },
  'input tokens per day: not a metric of ours, but a spent day': {
    body: body(
      message([line(FREE_TOKENS, 1_000_000, FLASH)], '5s'),
      [violation(FREE_TOKENS, TPD_FREE, FLASH)],
      '5s',
    ),
    scope: 'day',
    retryDelayMs: 5000,
    violations: [v('unknown', 1_000_000, FLASH, TPD_FREE)],
    unavailable: false,
  },
  'no details at all': {
    body: JSON.stringify({
      error: {
        code: 429,
        message: 'Resource has been exhausted (e.g. check quota).',
        status: 'RESOURCE_EXHAUSTED',
      },
    }),
    scope: 'short',
    retryDelayMs: undefined,
    violations: [],
    unavailable: false,
  },
  'array-wrapped': {
    body: `[${body(message([line(FREE_REQUESTS, 15, FLASH)], '7s'), [violation(FREE_REQUESTS, RPM_FREE, FLASH)], '7s')}]`,
    scope: 'short',
    retryDelayMs: 7000,
    violations: [v('rpm', 15, FLASH, RPM_FREE)],
    unavailable: false,
  },
  'fractional delay only in the message; model with a models/ prefix': {
    body: body(message([line(FREE_TOKENS, 250_000, `models/${FLASH}`)], '0.25s'), undefined),
    scope: 'short',
    retryDelayMs: 250,
    violations: [v('tpm', 250_000, FLASH)],
    unavailable: false,
  },
  'the model from the message when the dimensions lack it': {
    body: body(
      message([line(FREE_REQUESTS, 5, PRO)], '9s'),
      [{ quotaMetric: FREE_REQUESTS, quotaId: RPM_FREE }],
      '9s',
    ),
    scope: 'short',
    retryDelayMs: 9000,
    violations: [v('rpm', 5, PRO, RPM_FREE)],
    unavailable: false,
  },
  'a message line for another model lends no limit': {
    body: body(
      message([line(FREE_REQUESTS, 5, PRO)], '9s'),
      [violation(FREE_REQUESTS, RPM_FREE, FLASH)],
      '9s',
    ),
    scope: 'short',
    retryDelayMs: 9000,
    violations: [v('rpm', undefined, FLASH, RPM_FREE)],
    unavailable: false,
  },
  'hostile fields: wrong types, bad limits': {
    body: body(
      'Quota exceeded.',
      [
        { quotaId: 12345, quotaMetric: { x: 1 }, quotaDimensions: 'global', quotaValue: [1] },
        { quotaId: RPM_FREE.toUpperCase(), quotaDimensions: { model: 7 }, quotaValue: '-1' },
        { quotaId: 'gEnErAtErEqUeStSpErDaY', quotaValue: '1e3' },
        { quotaMetric: FREE_TOKENS, quotaValue: 'NaN' },
      ],
      '1s',
    ),
    scope: 'day',
    retryDelayMs: 1000,
    violations: [
      v('unknown', undefined, undefined),
      v('rpm', undefined, undefined, RPM_FREE.toUpperCase()),
      v('rpd', undefined, undefined, 'gEnErAtErEqUeStSpErDaY'),
      v('tpm', undefined, undefined),
    ],
    unavailable: false,
  },
};

describe('Function: classifyUpstreamResponse, reading every quota a 429 names', () => {
  it.each(Object.entries(cases))('%s', (_name, c) => {
    // Act
    const outcome = classifyUpstreamResponse(429, c.body);

    // Assess
    expect(outcome).toEqual({
      kind: 'quota',
      scope: c.scope,
      retryDelayMs: c.retryDelayMs,
      violations: c.violations,
      unavailable: c.unavailable,
    });
  });

  it('reads at most MAX_VIOLATIONS of a body listing 10,000, skipping junk, without throwing', () => {
    // Prepare
    const many = Array.from({ length: 10_000 }, (_, i) =>
      i % 2 === 0 ? violation(FREE_REQUESTS, RPM_FREE, FLASH, '0') : null,
    );
    const lines = Array.from({ length: 10_000 }, () => line(FREE_REQUESTS, 0, FLASH)).join('');
    const hostile = JSON.stringify({
      error: {
        code: 429,
        message: `${INTRO}${lines}`,
        details: [
          null,
          'text',
          { violations: 'not a list' },
          { '@type': 'type.googleapis.com/google.rpc.QuotaFailure', violations: many },
          { '@type': 'type.googleapis.com/google.rpc.QuotaFailure', violations: many },
        ],
      },
    });

    // Act
    const outcome = classifyUpstreamResponse(429, hostile);

    // Assess
    expect(outcome.kind).toBe('quota');
    if (outcome.kind !== 'quota') return;
    expect(outcome.violations).toHaveLength(MAX_VIOLATIONS);
    expect(outcome.violations.every((x) => x.metric === 'rpm' && x.limit === 0)).toBe(true);
    expect(outcome.unavailable).toBe(true);
  });

  it('reads at most MAX_VIOLATIONS message lines, and cuts an oversized quotaId', () => {
    // Prepare
    const lines = Array.from({ length: 500 }, () => line(FREE_TOKENS, 9, FLASH));
    const longId = `${RPM_FREE}${'x'.repeat(100_000)}`;

    // Act
    const fromLines = classifyUpstreamResponse(429, body(message(lines, '1s'), undefined));
    const fromLongId = classifyUpstreamResponse(429, body(INTRO, [violation(FREE_REQUESTS, longId, FLASH)]));

    // Assess
    expect(fromLines.kind === 'quota' && fromLines.violations).toHaveLength(MAX_VIOLATIONS);
    const [first] = fromLongId.kind === 'quota' ? fromLongId.violations : [];
    expect(first?.metric).toBe('rpm');
    expect(first?.quotaId.length).toBeLessThanOrEqual(200);
  });
});

describe('Function: classifyQuota', () => {
  it.each([
    [RPM_FREE, '', 'rpm'],
    [RPD_FREE, '', 'rpd'],
    [TPM_FREE, '', 'tpm'],
    [TPD_FREE, '', 'unknown'],
    ['GenerateContentPaidTierInputTokensPerModelPerMinute', '', 'tpm'],
    ['GenerateRequestsPerMinutePerProjectPerModel', '', 'rpm'],
    ['generaterequestsperdayperprojectpermodel', '', 'rpd'],
    ['', FREE_TOKENS, 'tpm'],
    ['', PAID_TOKENS, 'tpm'],
    ['', PAID_DAY, 'rpd'],
    ['', FREE_REQUESTS, 'unknown'],
    [RPM_FREE, FREE_REQUESTS, 'rpm'],
    [RPD_FREE, FREE_REQUESTS, 'rpd'],
    ['', '', 'unknown'],
    ['SomethingElsePerMinute', `${API}/images`, 'unknown'],
  ])('%s %s → %s', (quotaId, quotaMetric, expected) => {
    expect(classifyQuota(quotaId, quotaMetric)).toBe(expected);
  });
});
