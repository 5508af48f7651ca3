/**
 * The local config file, edited in place: read into a `yaml` Document (comments and order kept), changed,
 * checked, and written atomically (a temporary file beside it, then a rename). An edit made meanwhile by
 * someone else (an editor, another CLI) is detected by reading the file again just before the rename: if it
 * changed, the edit is made again on the new text. What remains is the moment between that last read and
 * the rename (microseconds); a writer that lands in it is overwritten.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, realpathSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { type Document, isMap, parseDocument } from 'yaml';
import { CliError } from './io.js';

/** How many times an edit is made again after the file changed under it. */
const ATTEMPTS = 5;

function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new CliError(`cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

/** Parses the file's text; a syntax error names its position only (the line may hold a key). */
export function parseYaml(text: string, path: string): Document {
  const doc = parseDocument(text, { keepSourceTokens: false });
  const [error] = doc.errors;
  if (error !== undefined) {
    const pos = error.linePos?.[0];
    const where = pos === undefined ? '' : ` at line ${pos.line}, column ${pos.col}`;
    throw new CliError(`${path}: YAML syntax error${where} (${error.code})`);
  }
  if (doc.contents !== null && !isMap(doc.contents))
    throw new CliError(`${path}: expected a YAML mapping at the top level`);
  return doc;
}

/** The file's current document. */
export function readYamlFile(path: string): Document {
  return parseYaml(readText(path), path);
}

/**
 * Runs `edit` on the file's document, `validate`s the result (throwing to refuse it), and writes it if it
 * changed anything. Returns what `edit` returned.
 */
export function editYamlFile<R>(
  path: string,
  edit: (doc: Document) => R,
  validate: (value: unknown) => void,
): R {
  // Edit the file a symlink points to, not the link.
  const real = realpathSync(path);
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    const before = readText(real);
    const doc = parseYaml(before, path);
    const result = edit(doc);
    validate(doc.toJS());
    // lineWidth 0: never fold a long line (the file's own lines stay as they were written).
    const after = doc.toString({ lineWidth: 0 });
    if (after === before) return result;
    const temp = join(dirname(real), `.${basename(real)}.${randomBytes(6).toString('hex')}.tmp`);
    writeFileSync(temp, after, { mode: statSync(real).mode & 0o777, flag: 'wx' });
    try {
      if (readText(real) !== before) continue;
      renameSync(temp, real);
      return result;
    } finally {
      rmSync(temp, { force: true });
    }
  }
  throw new CliError(`${path} kept changing while it was being edited; nothing written, try again`);
}
