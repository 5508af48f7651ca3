/**
 * Which model a request is for, read so that it is exactly the model Gemini will serve: the proxy keys
 * cooldowns and budgets on it, so any doubt (a spelling Gemini may read differently, a second `model`
 * field, a body too deep to read) is refused rather than guessed.
 */
import { MAX_JSON_DEPTH, scanBodyFields } from './json-fields.js';
import { canonicalModel, MODEL_NAME } from './models.js';

/** OpenAI-compatible calls that generate (and may take minutes to answer whole). */
const OPENAI_GENERATION = /^(chat\/completions|completions|responses|images\/generations)$/;
/** OpenAI-compatible calls Gemini answers only with a model: one the proxy can't read is refused. */
const OPENAI_NEEDS_MODEL = /^(chat\/completions|completions|responses|images\/generations|embeddings)$/;
const JSON_TYPE = /^application\/(.+\+)?json\b/i;

export type ModelTarget =
  | { readonly kind: 'openai'; readonly rest: string }
  /** Which methods reach Gemini at all is route-access.ts's allow-list; the method here only tells generation. */
  | { readonly kind: 'native'; readonly model: string; readonly method?: string | undefined };

export type RequestModel =
  | {
      readonly ok: true;
      /** Canonical model name; '' for calls that name none (listing, files, …). */
      readonly model: string;
      /** A generation call, answered as a stream or whole; undefined for anything else. */
      readonly generation: 'streamed' | 'whole' | undefined;
    }
  | { readonly ok: false; readonly status: 400; readonly message: string; readonly code: string };

const refuse = (status: 400, message: string, code: string): RequestModel => ({
  ok: false,
  status,
  message,
  code,
});

/**
 * Reads the model (and `stream`) of a request. The body is read as JSON whatever its content type says
 * (if it parses as JSON, it is JSON to Gemini too), without building it (see {@link scanBodyFields}).
 */
export function requestModel(
  target: ModelTarget,
  contentType: string | undefined,
  body: Uint8Array,
): RequestModel {
  const fields = scanBodyFields(body);
  if (fields.kind === 'too_deep')
    return refuse(400, `The JSON body is nested deeper than ${MAX_JSON_DEPTH} levels.`, 'invalid_json');
  if (fields.kind === 'duplicate')
    return refuse(400, `The JSON body has more than one top-level "${fields.field}" field.`, 'invalid_json');
  if (
    fields.kind === 'not_json' &&
    (fields.opensLikeJson || (contentType !== undefined && JSON_TYPE.test(contentType)))
  )
    return refuse(400, 'We could not parse the JSON body of your request.', 'invalid_json');
  const json = fields.kind === 'json' ? fields : undefined;

  let bodyModel: string | undefined;
  if (json?.model === null) return refuse(400, 'The "model" field must be a model name.', 'invalid_model');
  if (json?.model !== undefined) {
    const check = canonicalModel(json.model);
    if (!check.ok) return refuse(400, check.message, 'invalid_model');
    bodyModel = check.model;
  }

  if (target.kind === 'openai') {
    const model = bodyModel ?? '';
    if (model === '' && OPENAI_NEEDS_MODEL.test(target.rest))
      return refuse(
        400,
        'The request names no model: send a JSON body with a "model" field.',
        'invalid_model',
      );
    const generation = OPENAI_GENERATION.test(target.rest)
      ? json?.stream
        ? 'streamed'
        : 'whole'
      : undefined;
    return { ok: true, model, generation };
  }

  if (target.model === '') return { ok: true, model: '', generation: undefined };
  // The path names the model as Gemini reads it: exactly one canonical segment, no prefix, no encoding
  // tricks (`%3A`, `%2F` decode into characters a name can't have).
  if (!MODEL_NAME.test(target.model)) {
    const check = canonicalModel(target.model);
    return refuse(
      400,
      check.ok ? `The model name is not valid; use ${check.model}.` : check.message,
      'invalid_model',
    );
  }
  // A body naming another model would leave Gemini to choose between the two.
  if (bodyModel !== undefined && bodyModel !== target.model)
    return refuse(400, 'The body names another model than the path.', 'invalid_model');
  const generation =
    target.method === 'generateContent'
      ? 'whole'
      : target.method === 'streamGenerateContent'
        ? 'streamed'
        : undefined;
  return { ok: true, model: target.model, generation };
}
