/**
 * Model names: the one spelling the proxy keys its state on. Gemini's models are named in lower-case
 * letters, digits, dots and dashes (`gemini-2.5-flash`, `text-embedding-004`, `gemini-2.0-flash-001`);
 * clients may put `models/` in front. Any other spelling (`Gemini-2.5-Flash`, `gemini-2.5-flash@001`,
 * a `:` or `/` smuggled in by percent-encoding) could name the same model to Gemini under another key of
 * the proxy's state, and so slip past its cooldowns and budgets: such names are refused, not mapped.
 */

/** A canonical model name (after an optional `models/` prefix is removed). */
export const MODEL_NAME = /^[a-z0-9][a-z0-9.-]{0,63}$/;

export type ModelCheck =
  | { readonly ok: true; readonly model: string }
  | { readonly ok: false; readonly message: string };

/** `models/gemini-2.5-flash` → `gemini-2.5-flash`; state is keyed by the bare name. */
export function stripModelsPrefix(model: string): string {
  return model.startsWith('models/') ? model.slice(7) : model;
}

/**
 * The canonical form of a model name as a client sent it, or why it is refused. The message names the
 * canonical spelling when one is obvious (other case, a version or method suffix), never echoes the input.
 */
export function canonicalModel(raw: string): ModelCheck {
  const model = stripModelsPrefix(raw);
  if (MODEL_NAME.test(model)) return { ok: true, model };
  const guess = stripModelsPrefix(raw.trim().toLowerCase()).replace(/[@:].*$/s, '');
  const hint = MODEL_NAME.test(guess) ? `; use ${guess}` : '';
  return {
    ok: false,
    message: `The model name is not valid${hint}. Model names are lower-case letters, digits, dots and dashes (at most 64), optionally after "models/".`,
  };
}
