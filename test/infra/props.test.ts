import { App, Duration, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { describe, expect, it } from 'vitest';
import type { AlarmThresholds } from '../../lib/constructs/alarm-thresholds.js';
import { HealthCheck } from '../../lib/constructs/health-check.js';
import { KeyStateTable } from '../../lib/constructs/key-state-table.js';
import { ProxySecrets } from '../../lib/constructs/proxy-secrets.js';
import { GeminiProxyStack } from '../../lib/gemini-proxy-stack.js';
import { tempDirs } from '../support/temp-dir.js';

const tempDir = tempDirs();

/** An app that doesn't bundle the functions: these tests read the template, not the code. */
const unbundled = () => new App({ outdir: tempDir('gp-p-'), context: { 'aws:cdk:bundling-stacks': [] } });

describe('Stack: props checked at synth', () => {
  const synth = (props: ConstructorParameters<typeof GeminiProxyStack>[2]) =>
    Template.fromStack(new GeminiProxyStack(unbundled(), 'P', props));

  it('reserves no concurrency when asked for 0', () => {
    const fn = Object.values(synth({ reservedConcurrency: 0 }).findResources('AWS::Lambda::Function'))[0]!;
    expect(fn.Properties.ReservedConcurrentExecutions).toBeUndefined();
  });

  it('rejects settings the function would reject, naming the field', () => {
    expect(() => synth({ settings: { state: { timeout_ms: 0 } } })).toThrow(
      /state\.timeout_ms: expected a positive number/,
    );
    // @ts-expect-error: the settings' type knows its sections, so a misspelt one fails to compile too
    expect(() => synth({ settings: { polcy: {} } })).toThrow(/unknown field polcy|Unrecognized key/);
    expect(() => synth({ memorySize: 100.5 })).toThrow(/memorySize/);
    expect(() => synth({ settings: { fallbacks: { 'gemini-2.5-pro': ['Not A Model'] } } })).toThrow(
      /fallbacks\.gemini-2\.5-pro\[0\]: expected a model name/,
    );
  });

  it('takes model fallbacks in the settings (the secrets hold only keys and tokens)', () => {
    const settings = { fallbacks: { 'gemini-2.5-pro': ['gemini-2.5-flash'] } };
    const template = synth({ settings });
    template.hasResourceProperties('AWS::Lambda::Function', {
      Environment: {
        Variables: Match.objectLike({
          PROXY_SETTINGS: Match.stringLikeRegexp('"fallbacks":\\{"gemini-2.5-pro"'),
        }),
      },
    });
  });

  it('passes typed settings through as the function reads them, with the timeout as the request bound', () => {
    // Prepare
    const settings = { upstream: { native_base_url: 'https://gemini.example' }, state: { timeout_ms: 300 } };

    // Act
    const template = synth({ settings, timeout: Duration.minutes(2) });

    // Assess
    template.hasResourceProperties('AWS::Lambda::Function', {
      Environment: {
        Variables: Match.objectLike({
          PROXY_SETTINGS: JSON.stringify({
            upstream: { request_timeout_ms: 120_000, native_base_url: 'https://gemini.example' },
            state: { timeout_ms: 300 },
          }),
        }),
      },
    });
  });

  it('rejects alarm thresholds out of range, not finite or unknown, naming every field', () => {
    // Prepare
    const thresholds = {
      unhealthyKeys: -1,
      unhealthyKeyPercent: 101,
      errorRatePercent: 0,
      errorRateMinRequests: Number.NaN,
      ttfbP90Ms: Number.POSITIVE_INFINITY,
      keysExhaustedRefusals: 2.5,
      unhealthyKey: 5,
    } as AlarmThresholds;

    // Act
    const problem = (() => {
      try {
        synth({ alarmThresholds: thresholds });
      } catch (err) {
        return (err as Error).message;
      }
    })();

    // Assess
    expect(problem?.split('\n').sort()).toEqual([
      'alarmThresholds.errorRateMinRequests: expected a whole number at least 0',
      'alarmThresholds.errorRatePercent: expected a number above 0, at most 100',
      'alarmThresholds.keysExhaustedRefusals: expected a whole number at least 1',
      'alarmThresholds.ttfbP90Ms: expected a number above 0',
      'alarmThresholds.unhealthyKey: unknown field',
      'alarmThresholds.unhealthyKeyPercent: expected a number at least 0, at most 100',
      'alarmThresholds.unhealthyKeys: expected a whole number at least 0',
    ]);
  });

  it('rejects alarm thresholds that are not numbers, or not an object', () => {
    expect(() => synth({ alarmThresholds: { ttfbP90Ms: '5000' } as unknown as AlarmThresholds })).toThrow(
      /alarmThresholds\.ttfbP90Ms: expected a number above 0/,
    );
    expect(() => synth({ alarmThresholds: [] as unknown as AlarmThresholds })).toThrow(
      /alarmThresholds: expected an object/,
    );
  });

  it('accepts thresholds at the edges of their ranges', () => {
    // Act
    const template = synth({
      alarmThresholds: {
        unhealthyKeys: 0,
        unhealthyKeyPercent: 0,
        errorRateMinRequests: 0,
        keysExhaustedRefusals: 1,
      },
    });

    // Assess: "more than 0 keys" is ">= 1"
    template.hasResourceProperties('AWS::CloudWatch::Alarm', { MetricName: 'UnhealthyKeys', Threshold: 1 });
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'UnhealthyKeyPercent',
      Threshold: 0,
      ComparisonOperator: 'GreaterThanThreshold',
    });
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'KeysExhaustedRefusals',
      Threshold: 1,
    });
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Metrics: Match.arrayWith([
        Match.objectLike({ Expression: 'IF(requests >= 0, 100 * errors / requests, 0)' }),
      ]),
    });
  });

  it('rejects a health-check interval or concurrency that is not a whole number of at least 1', () => {
    // Prepare
    const stack = new Stack(unbundled(), 'H');
    const { table } = new KeyStateTable(stack, 'KeyState');
    const { keys } = new ProxySecrets(stack, 'Secrets');
    const check = (id: string, props: { interval?: Duration; concurrency?: number }) =>
      new HealthCheck(stack, id, {
        table,
        keysSecret: keys,
        metricsNamespace: 'N',
        settingsJson: '{}',
        ...props,
      });

    // Act, Assess
    expect(() => check('A', { interval: Duration.seconds(90) })).toThrow(/interval: expected a whole number/);
    expect(() => check('B', { concurrency: 0 })).toThrow(/concurrency: expected a whole number, at least 1/);
    check('C', { interval: Duration.minutes(1), concurrency: 1 });
    Template.fromStack(stack).hasResourceProperties('AWS::Events::Rule', {
      ScheduleExpression: 'rate(1 minute)',
    });
  });
});
