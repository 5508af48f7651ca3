import * as z from 'zod/mini';

/**
 * The two Secrets Manager secrets of a deployed stack, as the proxy reads them (their contents are checked
 * by the config's own schema afterwards): the keys secret holds the config file's `groups`; the tokens
 * secret only SHA-256 hashes of client tokens, each with an optional name, per-minute limit and creation time.
 */

/** The keys secret: `{"groups":[…]}`, the config file's `groups` shape. */
export const keysSecretSchema = z.object({ groups: z.array(z.unknown()) });

/** The client-tokens secret: `{"tokens":[{"sha256":"…","name":"…","rpm":60,"created":"…"}]}`. */
export const tokensSecretSchema = z.object({
  tokens: z.array(
    z.object({
      sha256: z.string(),
      name: z.optional(z.string()),
      rpm: z.optional(z.number()),
      created: z.optional(z.string()),
    }),
  ),
});
