/** Alarm thresholds; every one has a default. */
export interface AlarmThresholds {
  /** Alarm when more keys than this are invalid, over all groups (operator-disabled keys don't count). @default 3 */
  readonly unhealthyKeys?: number;
  /** Alarm when more than this percent of the keys are invalid. @default 50 */
  readonly unhealthyKeyPercent?: number;
  /** Percent of requests answered 5xx over 5 minutes. @default 10 */
  readonly errorRatePercent?: number;
  /** Requests in those 5 minutes below which the error rate isn't judged (one 5xx of one isn't 100 %). @default 20 */
  readonly errorRateMinRequests?: number;
  /** p90 time to Gemini's first byte, ms. @default 5000 */
  readonly ttfbP90Ms?: number;
  /** Requests refused because every key was cooling or out of budget, per 5 minutes. @default 10 */
  readonly keysExhaustedRefusals?: number;
}

/**
 * Each threshold's default and what it may be: finite, at least `min` (above it when `above`), at most
 * `max`, whole if `whole`.
 */
const RULES: Record<
  keyof AlarmThresholds,
  {
    readonly default: number;
    readonly min: number;
    readonly above?: boolean;
    readonly max?: number;
    readonly whole?: boolean;
  }
> = {
  unhealthyKeys: { default: 3, min: 0, whole: true },
  unhealthyKeyPercent: { default: 50, min: 0, max: 100 },
  // A threshold of 0 would hold these alarms on: their metrics read 0 in quiet periods.
  errorRatePercent: { default: 10, min: 0, above: true, max: 100 },
  errorRateMinRequests: { default: 20, min: 0, whole: true },
  ttfbP90Ms: { default: 5000, min: 0, above: true },
  keysExhaustedRefusals: { default: 10, min: 1, whole: true },
};

/** What a value must be, in words: `a whole number at least 1`, `a number above 0, at most 100`. */
function expected(rule: (typeof RULES)[keyof AlarmThresholds]): string {
  const max = rule.max === undefined ? '' : `, at most ${rule.max}`;
  return `${rule.whole ? 'a whole number' : 'a number'} ${rule.above ? 'above' : 'at least'} ${rule.min}${max}`;
}

/**
 * Checks alarm thresholds (from code, or JSON from the `alarmThresholds` context) and fills in the
 * defaults. Throws an error naming every unknown field and every value out of its range, rather than
 * deploy an alarm that never or always fires.
 */
export function checkAlarmThresholds(thresholds: unknown = {}): Required<AlarmThresholds> {
  if (typeof thresholds !== 'object' || thresholds === null || Array.isArray(thresholds)) {
    throw new Error('alarmThresholds: expected an object');
  }
  const given = thresholds as Record<string, unknown>;
  const problems = Object.keys(given)
    .filter((name) => !Object.hasOwn(RULES, name))
    .map((name) => `alarmThresholds.${name}: unknown field`);
  const checked: Record<string, number> = {};
  for (const [name, rule] of Object.entries(RULES)) {
    const value = given[name] ?? rule.default;
    const fits =
      typeof value === 'number' &&
      Number.isFinite(value) &&
      (rule.above ? value > rule.min : value >= rule.min) &&
      value <= (rule.max ?? Number.POSITIVE_INFINITY) &&
      (!rule.whole || Number.isInteger(value));
    if (fits) checked[name] = value;
    else problems.push(`alarmThresholds.${name}: expected ${expected(rule)}`);
  }
  if (problems.length > 0) throw new Error(problems.join('\n'));
  return checked as Required<AlarmThresholds>;
}
