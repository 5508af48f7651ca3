/**
 * A stack's secret (JSON), read into a `yaml` Document for the shared edits, and written back with a
 * guard against a concurrent edit: compare-and-swap on the secret's version.
 *
 * 1. Read the current version (`AWSCURRENT`): its text and `VersionId`.
 * 2. Make the edit, validate the result, `PutSecretValue` it as a new version labelled only with a label
 *    of this write's own (so nothing reads it yet).
 * 3. `UpdateSecretVersionStage`: move `AWSCURRENT` to the new version, *from the version read in 1*.
 *    Secrets Manager refuses the move if `AWSCURRENT` is on any other version by then: someone else wrote
 *    meanwhile. Then the edit is made again on their version (a few times at most).
 * 4. Take the write's own label off (the new version keeps `AWSCURRENT`; a version that lost the race is
 *    left without labels, which Secrets Manager deletes in time).
 *
 * No race window: the move in 3 is checked and made by Secrets Manager in one step. The operator needs
 * `GetSecretValue`, `PutSecretValue`, `UpdateSecretVersionStage` and `DescribeSecret` on the secret.
 */
import { randomUUID } from 'node:crypto';
import {
  DescribeSecretCommand,
  GetSecretValueCommand,
  PutSecretValueCommand,
  type SecretsManagerClient,
  UpdateSecretVersionStageCommand,
} from '@aws-sdk/client-secrets-manager';
import { Document } from 'yaml';
import { CliError } from './io.js';

const ATTEMPTS = 4;

/** A secret's current text and version. */
interface Current {
  readonly text: string;
  readonly versionId: string;
}

export class SecretDocument {
  constructor(
    private readonly client: SecretsManagerClient,
    private readonly secretId: string,
    /** What the secret is, for messages: `keys secret`, `tokens secret`. */
    private readonly what: string,
  ) {}

  private async current(): Promise<Current> {
    const out = await this.client.send(new GetSecretValueCommand({ SecretId: this.secretId }));
    if (typeof out.SecretString !== 'string' || out.VersionId === undefined)
      throw new CliError(`${this.what} has no text value`);
    return { text: out.SecretString, versionId: out.VersionId };
  }

  /** The secret's current JSON as a Document; a CliError (never quoting it) when it isn't JSON. */
  private parse(text: string): Document {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      throw new CliError(`${this.what} is not valid JSON; fix it by hand first`);
    }
    return new Document(value);
  }

  /** The secret as it is now. */
  async read(): Promise<Document> {
    return this.parse((await this.current()).text);
  }

  /**
   * Makes `edit` on the current version, `validate`s the result (throwing to refuse it), and writes it
   * with the compare-and-swap above (nothing is written when the edit changed nothing).
   */
  async edit<R>(edit: (doc: Document) => R, validate: (value: unknown) => void): Promise<R> {
    for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
      const read = await this.current();
      const doc = this.parse(read.text);
      const result = edit(doc);
      const value = doc.toJS();
      validate(value);
      const text = JSON.stringify(value);
      if (text === JSON.stringify(JSON.parse(read.text))) return result;
      if (await this.swap(read, text)) return result;
    }
    throw new CliError(`${this.what} kept changing while it was being edited; nothing written, try again`);
  }

  /** Writes `text` as the next version if `AWSCURRENT` is still `read`'s; false when another edit won. */
  private async swap(read: Current, text: string): Promise<boolean> {
    const versionId = randomUUID();
    const label = `gp-cli-${versionId.slice(0, 8)}`;
    await this.client.send(
      new PutSecretValueCommand({
        SecretId: this.secretId,
        SecretString: text,
        ClientRequestToken: versionId,
        VersionStages: [label],
      }),
    );
    let moved = false;
    try {
      await this.client.send(
        new UpdateSecretVersionStageCommand({
          SecretId: this.secretId,
          VersionStage: 'AWSCURRENT',
          MoveToVersionId: versionId,
          RemoveFromVersionId: read.versionId,
        }),
      );
      moved = true;
    } catch (err) {
      // Refused: if AWSCURRENT moved on since the read, another edit won; anything else is a real failure.
      // Moved to this very version, the move did land (its answer was lost and the SDK's retry refused).
      const current = await this.currentVersionId();
      if (current === versionId) moved = true;
      else if (current === read.versionId) throw err;
    } finally {
      await this.client
        .send(
          new UpdateSecretVersionStageCommand({
            SecretId: this.secretId,
            VersionStage: label,
            RemoveFromVersionId: versionId,
          }),
        )
        .catch(() => undefined);
    }
    return moved;
  }

  private async currentVersionId(): Promise<string | undefined> {
    const out = await this.client.send(new DescribeSecretCommand({ SecretId: this.secretId }));
    return Object.entries(out.VersionIdsToStages ?? {}).find(([, stages]) =>
      stages.includes('AWSCURRENT'),
    )?.[0];
  }
}
