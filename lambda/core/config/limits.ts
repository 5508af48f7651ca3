/** `limits`: proactive quota per key (or project) per model, configured as a default and per model. */
import * as z from 'zod/mini';
import { int, modelName, positive } from './fields.js';

/** Proactive quota for one model (or every model without its own entry), per key or project. */
const limitValues = {
  /** Requests per minute. */
  rpm: z.optional(positive()),
  /** Input tokens per minute (estimated before the call, reconciled with Gemini's usage after it). */
  tpm: z.optional(positive()),
  /** Requests per Pacific day. */
  rpd: z.optional(positive()),
  /** Length of the rpm/tpm window. Gemini's is a minute; shorter windows are for tests and benchmarks. */
  rpm_window_ms: z.optional(int(z.gte(100, 'expected at least 100'))),
};
const limitValuesSchema = z.strictObject(limitValues);
export type LimitValues = z.output<typeof limitValuesSchema>;

/**
 * `limits`: `{ default, models: { <model>: {…} } }`, or the flat `{ rpm, tpm, rpd }` (= `default`). A
 * model's own entry replaces `default` for it entirely. Normalized to `{ default, models }`.
 */
export const limitsSchema = z.pipe(
  z
    .strictObject({
      ...limitValues,
      default: z.optional(limitValuesSchema),
      models: z.optional(z.record(modelName(), limitValuesSchema, 'expected a mapping of model to limits')),
    })
    .check(
      z.refine(
        (l) =>
          !(l.default !== undefined || l.models !== undefined) ||
          (l.rpm === undefined &&
            l.tpm === undefined &&
            l.rpd === undefined &&
            l.rpm_window_ms === undefined),
        'expected either { rpm, tpm, rpd } or { default, models }, not both',
      ),
    ),
  z.transform(({ default: fallback, models, ...flat }) => ({
    default: fallback ?? flat,
    models: models ?? {},
  })),
);
export type GroupLimits = z.output<typeof limitsSchema>;
