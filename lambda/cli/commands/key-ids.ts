/** Keys named on the command line: by id (16 hex digits, or a unique prefix of 6 or more), never by key. */
import { type ConfiguredKeyEntry, type KeyPlace, listConfiguredKeys } from '../config-edit.js';
import { CliError, UsageError } from '../io.js';
import type { Target } from '../target.js';

/** Where each named key is configured (in `group` only, if given); a CliError for an id that matches none or several. */
export function resolveKeys(
  entries: readonly ConfiguredKeyEntry[],
  given: readonly string[],
  group?: string,
): KeyPlace[] {
  const places: KeyPlace[] = [];
  const candidates = entries.filter((e) => group === undefined || e.group === group);
  if (group !== undefined && !entries.some((e) => e.group === group))
    throw new CliError(`no group named ${group}`);
  for (const [i, raw] of given.entries()) {
    const id = raw.toLowerCase();
    // Not echoed: it may be a key typed by mistake.
    if (!/^[0-9a-f]{6,16}$/.test(id))
      throw new UsageError(
        `argument ${i + 1} is not a key id: give the 16-hex-digit id \`keys list\` shows (never the key itself)`,
      );
    const ids = new Set(candidates.filter((e) => e.keyId.startsWith(id)).map((e) => e.keyId));
    if (ids.size === 0)
      throw new CliError(`no configured key has id ${id}${group === undefined ? '' : ` in group ${group}`}`);
    if (ids.size > 1) throw new CliError(`${id} matches ${ids.size} keys: give more of the id`);
    const keyId = [...ids][0]!;
    for (const e of candidates) {
      if (e.keyId === keyId && !places.some((p) => p.group === e.group && p.keyId === keyId))
        places.push({ group: e.group, keyId });
    }
  }
  return places;
}

/** The configured keys of the target, and where the named ones are. */
export async function findKeys(
  target: Target,
  given: readonly string[],
  group?: string,
): Promise<{ entries: ConfiguredKeyEntry[]; places: KeyPlace[] }> {
  const entries = listConfiguredKeys(await target.readKeys());
  return { entries, places: resolveKeys(entries, given, group) };
}
