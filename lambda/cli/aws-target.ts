/**
 * A deployed stack as a CLI target, found by its CloudFormation outputs: the keys and tokens secrets, the
 * key-state table, the health-check function, and the stack's alarms. Credentials and region come from the
 * AWS SDK's default chain (`--region` overrides the region); `AWS_ENDPOINT_URL_<SERVICE>` is honoured.
 * The SDK clients are imported when first used, so that local commands start quickly.
 */
import type { CloudWatchClient } from '@aws-sdk/client-cloudwatch';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { LambdaClient } from '@aws-sdk/client-lambda';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { Document, YAMLSeq } from 'yaml';
import { seqAt } from './config-edit.js';
import { CliError } from './io.js';
import { KeyStateTable } from './key-table.js';
import { SecretDocument } from './secret-edit.js';
import { validateKeysSecret, validateTokensSecret } from './validate.js';

/** The stack outputs the CLI needs. */
export const STACK_OUTPUTS = [
  'TableName',
  'KeysSecretName',
  'TokensSecretName',
  'HealthCheckFunctionName',
] as const;
export type StackOutputs = Record<(typeof STACK_OUTPUTS)[number], string>;

/** An alarm of the stack and its state. */
export interface AlarmState {
  readonly name: string;
  readonly state: string;
  readonly reason: string | undefined;
  readonly since: string | undefined;
}

export class AwsTarget {
  readonly kind = 'aws';
  private outputsRead: Promise<StackOutputs> | undefined;
  private secretsClient: SecretsManagerClient | undefined;
  private table: KeyStateTable | undefined;

  constructor(
    readonly stack: string,
    readonly region: string | undefined,
  ) {}

  get label(): string {
    return `stack ${this.stack}${this.region === undefined ? '' : ` (${this.region})`}`;
  }

  private get config() {
    return this.region === undefined ? {} : { region: this.region };
  }

  /** The stack's outputs (read once); a CliError naming any the stack lacks. */
  outputs(): Promise<StackOutputs> {
    this.outputsRead ??= (async () => {
      const { CloudFormationClient, DescribeStacksCommand } = await import('@aws-sdk/client-cloudformation');
      const out = await new CloudFormationClient(this.config).send(
        new DescribeStacksCommand({ StackName: this.stack }),
      );
      const found = new Map((out.Stacks?.[0]?.Outputs ?? []).map((o) => [o.OutputKey, o.OutputValue]));
      const missing = STACK_OUTPUTS.filter((name) => !found.get(name));
      if (missing.length > 0)
        throw new CliError(
          `stack ${this.stack} has no output ${missing.join(', ')}: deploy this version of the stack (npx cdk deploy)`,
        );
      return Object.fromEntries(STACK_OUTPUTS.map((name) => [name, found.get(name)!])) as StackOutputs;
    })();
    return this.outputsRead;
  }

  private async secret(which: 'KeysSecretName' | 'TokensSecretName'): Promise<SecretDocument> {
    this.secretsClient ??= new SecretsManagerClient(this.config);
    const what = which === 'KeysSecretName' ? 'the keys secret' : 'the tokens secret';
    return new SecretDocument(this.secretsClient, (await this.outputs())[which], what);
  }

  async readKeys(): Promise<Document> {
    return (await this.secret('KeysSecretName')).read();
  }

  async editKeys<R>(edit: (doc: Document) => R): Promise<R> {
    return (await this.secret('KeysSecretName')).edit(edit, validateKeysSecret);
  }

  async readTokens(): Promise<YAMLSeq> {
    return seqAt(await (await this.secret('TokensSecretName')).read(), 'tokens', 'tokens');
  }

  async editTokens<R>(edit: (doc: Document, tokens: YAMLSeq) => R): Promise<R> {
    return (await this.secret('TokensSecretName')).edit(
      (doc) => edit(doc, seqAt(doc, 'tokens', 'tokens')),
      validateTokensSecret,
    );
  }

  /** The stack's key-state table. */
  async state(): Promise<KeyStateTable> {
    this.table ??= new KeyStateTable({
      client: new DynamoDBClient(this.config),
      table: (await this.outputs()).TableName,
    });
    return this.table;
  }

  /** Runs the health-check function now and returns what it returned (`{ checked, skipped, dead }`). */
  async invokeHealthCheck(): Promise<unknown> {
    const { LambdaClient, InvokeCommand } = await import('@aws-sdk/client-lambda');
    const client: LambdaClient = new LambdaClient(this.config);
    const out = await client.send(
      new InvokeCommand({
        FunctionName: (await this.outputs()).HealthCheckFunctionName,
        InvocationType: 'RequestResponse',
        Payload: new TextEncoder().encode('{}'),
      }),
    );
    const text = out.Payload === undefined ? '' : new TextDecoder().decode(out.Payload);
    let payload: unknown;
    try {
      payload = text === '' ? undefined : JSON.parse(text);
    } catch {
      payload = undefined;
    }
    if (out.FunctionError !== undefined) {
      const message = (payload as { errorMessage?: unknown } | undefined)?.errorMessage;
      throw new CliError(
        `the health check failed: ${typeof message === 'string' ? message : out.FunctionError} (see its logs)`,
      );
    }
    return payload;
  }

  /** The stack's alarms (`<stack>-Monitoring…`, the names CloudFormation gives them) and their states. */
  async alarms(): Promise<AlarmState[]> {
    const { CloudWatchClient, DescribeAlarmsCommand } = await import('@aws-sdk/client-cloudwatch');
    const client: CloudWatchClient = new CloudWatchClient(this.config);
    const alarms: AlarmState[] = [];
    let NextToken: string | undefined;
    do {
      const out = await client.send(
        new DescribeAlarmsCommand({ AlarmNamePrefix: `${this.stack}-Monitoring`, NextToken }),
      );
      for (const a of [...(out.MetricAlarms ?? []), ...(out.CompositeAlarms ?? [])]) {
        alarms.push({
          name: a.AlarmName ?? '',
          state: a.StateValue ?? 'UNKNOWN',
          reason: a.StateReason,
          since: a.StateUpdatedTimestamp?.toISOString(),
        });
      }
      NextToken = out.NextToken;
    } while (NextToken !== undefined);
    return alarms;
  }
}
