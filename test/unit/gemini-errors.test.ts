import { describe, expect, it } from 'vitest';
import {
  classifyUpstreamResponse,
  parseGeminiError,
  parseRetryDelay,
  type UpstreamOutcome,
} from '../../lambda/core/gemini-errors.js';

const quota = (
  quotaId: string | undefined,
  retryDelay: string | undefined,
  message = 'You exceeded your current quota.',
) =>
  JSON.stringify({
    error: {
      code: 429,
      message,
      status: 'RESOURCE_EXHAUSTED',
      details: [
        ...(quotaId === undefined
          ? []
          : [
              {
                '@type': 'type.googleapis.com/google.rpc.QuotaFailure',
                violations: [{ quotaMetric: 'generativelanguage.googleapis.com/x', quotaId }],
              },
            ]),
        ...(retryDelay === undefined
          ? []
          : [{ '@type': 'type.googleapis.com/google.rpc.RetryInfo', retryDelay }]),
      ],
    },
  });

/** A quota outcome whose violations another table checks. */
const quotaOf = (scope: 'day' | 'short', retryDelayMs: number | undefined): UpstreamOutcome => ({
  kind: 'quota',
  scope,
  retryDelayMs,
  violations: expect.any(Array),
  unavailable: false,
});

const withReason = (code: number, status: string, reason: string, message = 'denied') =>
  JSON.stringify({
    error: {
      code,
      message,
      status,
      details: [{ '@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason, domain: 'googleapis.com' }],
    },
  });

const plain = (code: number, status: string, message: string) =>
  JSON.stringify({ error: { code, message, status } });

describe('Function: classifyUpstreamResponse', () => {
  const cases: Array<[string, number, string, UpstreamOutcome]> = [
    ['200 is success', 200, '{}', { kind: 'success' }],
    [
      'per-minute 429 with RetryInfo',
      429,
      quota('GenerateRequestsPerMinutePerProjectPerModel-FreeTier', '38s'),
      quotaOf('short', 38_000),
    ],
    [
      'fractional retryDelay rounds up to whole ms',
      429,
      quota('GenerateRequestsPerMinutePerProjectPerModel-FreeTier', '45.837906927s'),
      quotaOf('short', 45_838),
    ],
    [
      'per-day quotaId parks for the day',
      429,
      quota('GenerateRequestsPerDayPerProjectPerModel-FreeTier', '20s'),
      quotaOf('day', 20_000),
    ],
    [
      'paid-tier token quota per minute',
      429,
      quota('GenerateContentPaidTierInputTokensPerModelPerMinute', '2s'),
      quotaOf('short', 2000),
    ],
    [
      'delay only in the message',
      429,
      quota(undefined, undefined, 'You exceeded your current quota. Please retry in 47.434392449s.'),
      quotaOf('short', 47_435),
    ],
    [
      'bare 429 with no details',
      429,
      plain(429, 'RESOURCE_EXHAUSTED', 'Resource has been exhausted (e.g. check quota).'),
      quotaOf('short', undefined),
    ],
    ['429 with a non-JSON body', 429, 'Too Many Requests', quotaOf('short', undefined)],
    [
      'array-wrapped 429',
      429,
      `[${quota('GenerateRequestsPerMinutePerProjectPerModel-FreeTier', '7s')}]`,
      quotaOf('short', 7000),
    ],
    [
      'API_KEY_INVALID reason',
      400,
      withReason(
        400,
        'INVALID_ARGUMENT',
        'API_KEY_INVALID',
        'API key not valid. Please pass a valid API key.',
      ),
      { kind: 'dead_key', reason: 'API_KEY_INVALID' },
    ],
    [
      'array-wrapped API_KEY_INVALID',
      400,
      `[${withReason(400, 'INVALID_ARGUMENT', 'API_KEY_INVALID')}]`,
      { kind: 'dead_key', reason: 'API_KEY_INVALID' },
    ],
    [
      'key-invalid message without details',
      400,
      plain(400, 'INVALID_ARGUMENT', 'API key expired. Please renew the API key.'),
      { kind: 'dead_key', reason: 'API_KEY_INVALID' },
    ],
    [
      'CONSUMER_SUSPENDED',
      403,
      withReason(403, 'PERMISSION_DENIED', 'CONSUMER_SUSPENDED'),
      { kind: 'dead_key', reason: 'CONSUMER_SUSPENDED' },
    ],
    [
      'suspended message without details',
      403,
      plain(403, 'PERMISSION_DENIED', "Permission denied: Consumer 'api_key:xyz' has been suspended."),
      { kind: 'dead_key', reason: 'CONSUMER_SUSPENDED' },
    ],
    [
      'leaked key',
      403,
      plain(403, 'PERMISSION_DENIED', 'Your API key was reported as leaked. Please use another API key.'),
      { kind: 'dead_key', reason: 'LEAKED' },
    ],
    [
      'API_KEY_SERVICE_BLOCKED',
      403,
      withReason(403, 'PERMISSION_DENIED', 'API_KEY_SERVICE_BLOCKED'),
      { kind: 'dead_key', reason: 'API_KEY_SERVICE_BLOCKED' },
    ],
    [
      'SERVICE_DISABLED',
      403,
      withReason(403, 'PERMISSION_DENIED', 'SERVICE_DISABLED'),
      { kind: 'dead_key', reason: 'SERVICE_DISABLED' },
    ],
    [
      'plain 400 is the client’s',
      400,
      plain(400, 'INVALID_ARGUMENT', 'Invalid JSON payload received.'),
      { kind: 'client_error' },
    ],
    [
      'other 403 is the client’s',
      403,
      plain(403, 'PERMISSION_DENIED', 'You do not have access to this model.'),
      { kind: 'client_error' },
    ],
    [
      'a 400 echoing "API key not valid" from the client’s own input is the client’s',
      400,
      plain(
        400,
        'INVALID_ARGUMENT',
        `Invalid value at 'generation_config.temperature' (TYPE_FLOAT), "API key not valid"`,
      ),
      { kind: 'client_error' },
    ],
    [
      'a 400 with BadRequest details and key wording is the client’s',
      400,
      JSON.stringify({
        error: {
          code: 400,
          message: 'API key not valid',
          status: 'INVALID_ARGUMENT',
          details: [{ '@type': 'type.googleapis.com/google.rpc.BadRequest', fieldViolations: [] }],
        },
      }),
      { kind: 'client_error' },
    ],
    [
      'a 403 echoing "reported as leaked" mid-message is the client’s',
      403,
      plain(403, 'PERMISSION_DENIED', 'Cannot use file "Your API key was reported as leaked"'),
      { kind: 'client_error' },
    ],
    ['404 is the client’s', 404, plain(404, 'NOT_FOUND', 'model not found'), { kind: 'client_error' }],
    ['413 is the client’s', 413, '', { kind: 'client_error' }],
    [
      '500 is internal: retried on another key only',
      500,
      plain(500, 'INTERNAL', 'Internal error'),
      { kind: 'internal' },
    ],
    ['502 is transient', 502, '<html>bad gateway</html>', { kind: 'transient' }],
    ['503 is transient', 503, plain(503, 'UNAVAILABLE', 'The model is overloaded.'), { kind: 'transient' }],
    [
      '503 mentioning a key is still transient',
      503,
      plain(503, 'UNAVAILABLE', 'API key not valid'),
      { kind: 'transient' },
    ],
    ['504 is returned', 504, plain(504, 'DEADLINE_EXCEEDED', 'Deadline exceeded'), { kind: 'client_error' }],
  ];

  it.each(cases)('%s', (_name, status, body, expected) => {
    // Act
    const outcome = classifyUpstreamResponse(status, body);

    // Assess
    expect(outcome).toEqual(expected);
  });
});

describe('Function: parseRetryDelay', () => {
  it.each([
    ['38s', 38_000],
    ['0.5s', 500],
    ['45.837906927s', 45_838],
    ['0s', 0],
    ['', undefined],
    ['38', undefined],
    ['1m', undefined],
    [undefined, undefined],
  ])('parses %s', (input, expected) => {
    expect(parseRetryDelay(input)).toBe(expected);
  });
});

describe('Function: parseGeminiError', () => {
  it('reads both the plain and the array-wrapped shape', () => {
    const body = plain(503, 'UNAVAILABLE', 'overloaded');
    expect(parseGeminiError(body)).toEqual(parseGeminiError(`[${body}]`));
    expect(parseGeminiError(body)?.status).toBe('UNAVAILABLE');
  });

  it('returns undefined for bodies that are not Gemini errors', () => {
    expect(parseGeminiError('')).toBeUndefined();
    expect(parseGeminiError('{"choices":[]}')).toBeUndefined();
    expect(parseGeminiError('[]')).toBeUndefined();
  });
});

describe('Function: parseRetryDelay, with delays no one should wait for', () => {
  const DAY = 25 * 3_600_000;
  it.each([
    ['a 1e23-second Duration written out', `1${'0'.repeat(23)}s`, DAY],
    ['one that overflows to Infinity', `1${'0'.repeat(400)}s`, undefined],
    ['exponent notation', '1e+23s', undefined],
    ['a negative delay', '-5s', undefined],
    ['NaN', 'NaNs', undefined],
    ['a day and a half', '129600s', DAY],
    ['just under the cap', '89999s', 89_999_000],
  ])('%s', (_name, input, expected) => {
    expect(parseRetryDelay(input)).toBe(expected);
  });

  it('caps a huge delay in a 429 and in its message alike', () => {
    const huge = `1${'0'.repeat(23)}s`;
    expect(classifyUpstreamResponse(429, quota(undefined, huge))).toEqual(quotaOf('short', DAY));
    expect(
      classifyUpstreamResponse(429, quota(undefined, undefined, `Please retry in ${huge.slice(0, -1)}s.`)),
    ).toEqual(quotaOf('short', DAY));
  });
});
