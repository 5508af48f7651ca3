/**
 * Edits of the `groups` and client-token lists, made on a `yaml` Document: the local config file (whose
 * comments and order the Document keeps) or a secret's JSON loaded into one. Every edit is a function of
 * the document it is given, so a read-modify-write that lost a race can simply run it again.
 */
import { type Document, isAlias, isMap, isScalar, isSeq, type Node, type YAMLMap, YAMLSeq } from 'yaml';
import { keyId } from '../core/credentials.js';
import { CliError } from './io.js';

/** A key as configured, found in a group: its id, the raw key (never shown), its project and flag. */
export interface ConfiguredKeyEntry {
  readonly group: string;
  readonly keyId: string;
  readonly apiKey: string;
  readonly project: string | undefined;
  readonly disabled: boolean;
}

/** The raw key an `api_keys` item holds: a plain string, or `{ key, … }`. */
function keyOf(item: unknown): string | undefined {
  const value = isScalar(item) ? item.value : isMap(item) ? item.get('key') : undefined;
  return typeof value === 'string' ? value.trim() : undefined;
}

/** The sequence at `path` (made empty when absent); a CliError when something else is there. */
export function seqAt(doc: Document, path: string, what: string): YAMLSeq {
  const node = doc.get(path, true);
  if (node === undefined || node === null) {
    const seq = new YAMLSeq();
    doc.set(path, seq);
    return seq;
  }
  if (!isSeq(node)) throw new CliError(`${what}: expected a list at ${path}`);
  return node;
}

function groupMaps(doc: Document): YAMLMap[] {
  return seqAt(doc, 'groups', 'keys').items.filter((g): g is YAMLMap => isMap(g));
}

/**
 * A group's key list. One written as a YAML alias of another group's list is read through (`doc` given),
 * but never edited here: an edit would change both groups, or replace this one's list.
 */
function keysOfGroup(group: YAMLMap, doc?: Document): YAMLSeq | undefined {
  const keys = group.get('api_keys', true);
  if (isAlias(keys)) {
    if (doc !== undefined) {
      const list = keys.resolve(doc);
      return isSeq(list) ? list : undefined;
    }
    throw new CliError(
      `group ${String(group.get('name'))}: api_keys is a YAML alias of another list; edit the file by hand`,
    );
  }
  return isSeq(keys) ? keys : undefined;
}

/** The group's list to edit, when it holds one of `ids` (an aliased list that does is refused). */
function listToEdit(group: YAMLMap, doc: Document, ids: ReadonlySet<string>): YAMLSeq | undefined {
  const read = keysOfGroup(group, doc);
  const holds = read?.items.some((item) => {
    const key = keyOf(item);
    return key !== undefined && ids.has(keyId(key));
  });
  return holds ? keysOfGroup(group) : read;
}

/** Every configured key, group by group, in order. */
export function listConfiguredKeys(doc: Document): ConfiguredKeyEntry[] {
  return groupMaps(doc).flatMap((g) => {
    const group = String(g.get('name'));
    return (keysOfGroup(g, doc)?.items ?? []).flatMap((item) => {
      const apiKey = keyOf(item);
      if (apiKey === undefined || apiKey === '') return [];
      const project = isMap(item) ? item.get('project') : undefined;
      return [
        {
          group,
          keyId: keyId(apiKey),
          apiKey,
          project: typeof project === 'string' ? project : undefined,
          disabled: isMap(item) && item.get('disabled') === true,
        },
      ];
    });
  });
}

/**
 * Appends `keys` to the group `name` (created when `create` is set). Refuses the whole edit when any key
 * is already configured (in any group) or given twice, naming the key ids.
 */
export function addKeys(
  doc: Document,
  name: string,
  keys: readonly string[],
  options: { project?: string | undefined; create?: boolean | undefined },
): void {
  const known = new Map(listConfiguredKeys(doc).map((k) => [k.keyId, k.group]));
  const seen = new Set<string>();
  const dupes: string[] = [];
  for (const key of keys) {
    const id = keyId(key);
    if (known.has(id)) dupes.push(`${id} (already in group ${known.get(id)})`);
    else if (seen.has(id)) dupes.push(`${id} (given twice)`);
    seen.add(id);
  }
  if (dupes.length > 0) throw new CliError(`duplicate keys, nothing added: ${dupes.join(', ')}`);
  const entries = keys.map((key) => {
    if (options.project === undefined) return doc.createNode(key);
    const node = doc.createNode({ key, project: options.project });
    node.flow = true;
    return node;
  });
  let group = groupMaps(doc).find((g) => g.get('name') === name);
  if (group === undefined) {
    if (options.create !== true) {
      const names = groupMaps(doc).map((g) => String(g.get('name')));
      throw new CliError(
        `no group named ${name} (groups: ${names.join(', ') || 'none'}); pass --create to make it`,
      );
    }
    group = doc.createNode({ name, api_keys: [] }) as YAMLMap;
    seqAt(doc, 'groups', 'keys').add(group);
  }
  let seq = keysOfGroup(group);
  if (seq === undefined) {
    seq = new YAMLSeq();
    group.set('api_keys', seq);
  }
  for (const entry of entries) seq.add(entry);
}

/** Where a key id was found: its group. */
export interface KeyPlace {
  readonly group: string;
  readonly keyId: string;
}

/**
 * Removes the keys with these ids from every group holding them (or only from `group`). Refuses to leave
 * a group without keys: a group is removed by editing the configuration itself.
 */
export function removeKeys(doc: Document, ids: ReadonlySet<string>, group?: string): KeyPlace[] {
  const removed: KeyPlace[] = [];
  for (const g of groupMaps(doc)) {
    const name = String(g.get('name'));
    if (group !== undefined && name !== group) continue;
    const seq = listToEdit(g, doc, ids);
    if (seq === undefined) continue;
    const kept = seq.items.filter((item) => {
      const key = keyOf(item);
      const id = key === undefined ? undefined : keyId(key);
      if (id === undefined || !ids.has(id)) return true;
      removed.push({ group: name, keyId: id });
      return false;
    });
    if (kept.length === 0 && seq.items.length > 0)
      throw new CliError(
        `removing these keys would leave group ${name} without keys: remove the group from the configuration instead, or disable its keys`,
      );
    seq.items = kept;
  }
  return removed;
}

/**
 * Sets (`disabled: true`) or removes the `disabled` flag of the keys with these ids (in `group` only, if
 * given). A plain key becomes `{ key, disabled: true }`; one left with only `key` becomes plain again.
 */
export function setDisabledFlag(
  doc: Document,
  ids: ReadonlySet<string>,
  disabled: boolean,
  group?: string,
): KeyPlace[] {
  const changed: KeyPlace[] = [];
  for (const g of groupMaps(doc)) {
    const name = String(g.get('name'));
    if (group !== undefined && name !== group) continue;
    const seq = listToEdit(g, doc, ids);
    if (seq === undefined) continue;
    seq.items = seq.items.map((item) => {
      const key = keyOf(item);
      if (key === undefined || !ids.has(keyId(key))) return item;
      changed.push({ group: name, keyId: keyId(key) });
      if (disabled) {
        if (isMap(item)) {
          item.set('disabled', true);
          return item;
        }
        const node = doc.createNode({ key: (item as { value: unknown }).value, disabled: true });
        node.flow = true;
        return node;
      }
      if (!isMap(item)) return item;
      item.delete('disabled');
      return item.items.length === 1 ? (item.get('key', true) as Node) : item;
    });
  }
  return changed;
}
