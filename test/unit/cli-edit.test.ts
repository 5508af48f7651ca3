import { readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { maskKey } from '../../lambda/cli/output.js';
import { editYamlFile } from '../../lambda/cli/yaml-file.js';
import { CliOutputs } from '../support/cli-runner.js';
import { tempDirs } from '../support/temp-dir.js';

const tempDir = tempDirs();
const accept = () => undefined;

describe('Function: editYamlFile', () => {
  it('makes the edit again when the file changed between its read and its rename, keeping both changes', () => {
    // Prepare
    const dir = tempDir('gp-yaml-');
    const path = join(dir, 'config.yaml');
    writeFileSync(path, '# top comment\nitems: [a] # inline\n', { mode: 0o600 });
    let runs = 0;

    // Act: the first run's edit is overtaken by another writer before the rename
    editYamlFile(
      path,
      (doc) => {
        runs++;
        if (runs === 1) writeFileSync(path, '# top comment\nitems: [a, other] # inline\n');
        doc.addIn(['items'], 'mine');
      },
      accept,
    );

    // Assess
    expect(runs).toBe(2);
    const text = readFileSync(path, 'utf8');
    expect(parse(text)).toEqual({ items: ['a', 'other', 'mine'] });
    expect(text).toContain('# top comment');
    expect(text).toContain('# inline');
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(readdirSync(dir)).toEqual(['config.yaml']);
  });

  it('gives up after repeated concurrent edits, and writes nothing when the result is refused', () => {
    // Prepare
    const dir = tempDir('gp-yaml-');
    const path = join(dir, 'config.yaml');
    writeFileSync(path, 'n: 0\n');
    let n = 0;

    // Act
    const busy = () =>
      editYamlFile(
        path,
        (doc) => {
          writeFileSync(path, `n: ${++n}\n`);
          doc.set('mine', true);
        },
        accept,
      );
    const refused = () =>
      editYamlFile(
        path,
        (doc) => doc.set('mine', true),
        () => {
          throw new Error('refused');
        },
      );

    // Assess
    expect(busy).toThrow('kept changing while it was being edited');
    const before = readFileSync(path, 'utf8');
    expect(refused).toThrow('refused');
    expect(readFileSync(path, 'utf8')).toBe(before);
    expect(readdirSync(dir)).toEqual(['config.yaml']);
  });

  it('edits the file a symlink points to, leaving the link in place', () => {
    // Prepare
    const dir = tempDir('gp-yaml-');
    writeFileSync(join(dir, 'real.yaml'), 'a: 1\n');
    symlinkSync(join(dir, 'real.yaml'), join(dir, 'link.yaml'));

    // Act
    editYamlFile(join(dir, 'link.yaml'), (doc) => doc.set('b', 2), accept);

    // Assess
    expect(parse(readFileSync(join(dir, 'real.yaml'), 'utf8'))).toEqual({ a: 1, b: 2 });
    expect(readdirSync(dir).sort()).toEqual(['link.yaml', 'real.yaml']);
  });

  it('reports a syntax error by position only, never quoting the line', () => {
    // Prepare
    const dir = tempDir('gp-yaml-');
    const path = join(dir, 'config.yaml');
    writeFileSync(path, 'groups:\n  - api_keys: [AIzaSySecretInABrokenLine\n');

    // Act
    const edit = () => editYamlFile(path, () => undefined, accept);

    // Assess
    expect(edit).toThrow(/YAML syntax error at line \d+, column \d+/);
    expect(edit).not.toThrow(/AIzaSySecret/);
  });
});

describe('Function: maskKey', () => {
  it('shows at most the first and last 4 characters, fewer for short keys, none under 8', () => {
    expect(maskKey('AIzaFAKE-not-a-real-key-Qk7x')).toBe('AIza…Qk7x');
    expect(maskKey('abcdefghijkl')).toBe('abc…jkl');
    expect(maskKey('abcdefgh')).toBe('ab…gh');
    expect(maskKey('abcdefg')).toBe('…');
  });
});

describe('Class: CliOutputs', () => {
  it('finds a secret in any output, but allows the created token in its own stdout', () => {
    // Prepare
    const outputs = new CliOutputs();
    outputs.results.push({
      argv: ['tokens', 'create', '--name', 'x'],
      code: 0,
      stdout: 'tok-1\n',
      stderr: '',
    });
    const leaky = new CliOutputs();
    leaky.results.push({ argv: ['keys', 'list'], code: 0, stdout: 'tok-1', stderr: '' });

    // Act / Assess
    expect(() => outputs.expectNoLeaks(['tok-1', 'key-1'])).not.toThrow();
    expect(() => leaky.expectNoLeaks(['tok-1'])).toThrow();
  });
});
