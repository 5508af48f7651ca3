/** Field schemas the configuration is built from (zod/mini), each with an English message of its own. */
import * as z from 'zod/mini';
import { canonicalModel } from '../models.js';

const URL_MESSAGE = 'expected an http(s) URL';
export const httpUrl = () =>
  z.string(URL_MESSAGE).check(
    z.refine((u) => URL.canParse(u), URL_MESSAGE),
    z.refine((u) => /^https?:\/\//.test(u), URL_MESSAGE),
  );

export const int = (...checks: Parameters<ReturnType<typeof z.number>['check']>) =>
  z.number('expected a number').check(z.int('expected an integer'), ...checks);
export const positive = () => int(z.positive('expected a positive number'));
export const nonNegative = () => int(z.gte(0, 'expected 0 or more'));
export const nonEmpty = (message: string) => z.string().check(z.minLength(1, message));
/** Applies a default when the field is absent (zod/mini spells it `_default`). */
export const withDefault = <T extends z.ZodMiniType>(schema: T, value: z.output<T>) =>
  z._default(schema, value as never);

/** A model name as configured (any spelling `canonicalModel` reads). */
export const modelName = () =>
  z
    .string('expected a model name')
    .check(z.refine((m) => canonicalModel(m).ok, 'expected a model name such as gemini-2.5-flash'));
