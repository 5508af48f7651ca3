/**
 * A local configuration as a CLI target: the YAML file (keys, tokens) and, when its `state` (or
 * `DYNAMODB_ENDPOINT`/`TABLE_NAME`) names a DynamoDB table, that table for key state.
 */
import type { Document, YAMLSeq } from 'yaml';
import { loadConfig } from '../adapters/config-loader.js';
import { stateClient } from '../adapters/state/dynamodb/client.js';
import type { ProxyConfig } from '../core/config/schema.js';
import { seqAt } from './config-edit.js';
import { KeyStateTable } from './key-table.js';
import { validateConfigFile } from './validate.js';
import { editYamlFile, readYamlFile } from './yaml-file.js';

export class LocalTarget {
  readonly kind = 'local';
  private table: KeyStateTable | undefined | null = null;

  constructor(
    /** The config file (absolute). */
    readonly path: string,
    private readonly env: Readonly<Record<string, string | undefined>>,
    private readonly cwd: string,
  ) {}

  get label(): string {
    return `config ${this.path}`;
  }

  /** The configuration `npm start` would run with (the file, with its environment overrides), checked. */
  config(): ProxyConfig {
    return loadConfig({ ...this.env, CONFIG_PATH: this.path }, this.cwd);
  }

  async readKeys(): Promise<Document> {
    return readYamlFile(this.path);
  }

  async editKeys<R>(edit: (doc: Document) => R): Promise<R> {
    return editYamlFile(this.path, edit, validateConfigFile(this.path, this.env));
  }

  async readTokens(): Promise<YAMLSeq> {
    return seqAt(readYamlFile(this.path), 'client_tokens', 'tokens');
  }

  async editTokens<R>(edit: (doc: Document, tokens: YAMLSeq) => R): Promise<R> {
    return editYamlFile(
      this.path,
      (doc) => edit(doc, seqAt(doc, 'client_tokens', 'tokens')),
      validateConfigFile(this.path, this.env),
    );
  }

  /** The DynamoDB table the configuration shares key state in; undefined with `store: memory`. */
  async state(): Promise<KeyStateTable | undefined> {
    if (this.table === null) {
      const { state } = this.config();
      this.table =
        state.store === 'dynamodb'
          ? new KeyStateTable({ client: stateClient(state, 10_000), table: state.table })
          : undefined;
    }
    return this.table;
  }

  /** True when `CLIENT_TOKENS` is set: the server then ignores the file's tokens. */
  get tokensOverridden(): boolean {
    return (this.env.CLIENT_TOKENS ?? '').trim() !== '';
  }
}
