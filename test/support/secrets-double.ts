import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A Secrets Manager double on 127.0.0.1 speaking the real wire protocol (JSON 1.1, `x-amz-target:
 * secretsmanager.GetSecretValue`), for code that reaches it through `AWS_ENDPOINT_URL_SECRETS_MANAGER`.
 * Secrets have versions and staging labels as Secrets Manager keeps them: `GetSecretValue` (by label,
 * default `AWSCURRENT`, or id), `PutSecretValue` (labels given, default `AWSCURRENT`; `AWSPREVIOUS` follows),
 * `UpdateSecretVersionStage` (refused when the label is elsewhere and `RemoveFromVersionId` doesn't name its
 * holder), `DescribeSecret` (`VersionIdsToStages`).
 */
export interface SecretsDouble {
  readonly endpoint: string;
  /** The current (`AWSCURRENT`) text of each secret; `set` writes a new current version. */
  readonly values: {
    get(secretId: string): string | undefined;
    set(secretId: string, text: string): void;
  };
  /** Each secret's versions by id, with their labels. */
  readonly versions: Map<string, Map<string, { text: string; stages: Set<string> }>>;
  /** While true, every call fails with a 500 InternalServiceError. */
  failing: boolean;
  /** While true, calls are accepted and never answered. */
  hanging: boolean;
  /** `<target>:<SecretId>` of every call, e.g. `secretsmanager.PutSecretValue:keys`. */
  readonly calls: string[];
  /** Runs before a call is answered (e.g. to make a concurrent edit land between a read and a write). */
  beforeCall: ((operation: string, input: Record<string, unknown>) => void) | undefined;
  close(): Promise<void>;
}

type Versions = Map<string, { text: string; stages: Set<string> }>;

class Refusal extends Error {
  constructor(
    readonly type: string,
    message: string,
  ) {
    super(message);
  }
}

/** Moves `stage` to `to` in `versions`; `AWSPREVIOUS` follows a moved `AWSCURRENT`. */
function moveStage(versions: Versions, stage: string, to: string | undefined): void {
  let from: string | undefined;
  for (const [id, v] of versions) if (v.stages.delete(stage)) from = id;
  if (to !== undefined) versions.get(to)!.stages.add(stage);
  if (stage === 'AWSCURRENT' && from !== undefined && from !== to) moveStage(versions, 'AWSPREVIOUS', from);
}

function holderOf(versions: Versions, stage: string): string | undefined {
  for (const [id, v] of versions) if (v.stages.has(stage)) return id;
  return undefined;
}

export async function startSecretsDouble(initial: Record<string, string>): Promise<SecretsDouble> {
  const secrets = new Map<string, Versions>();
  const put = (secretId: string, text: string, versionId: string, stages: readonly string[]) => {
    let versions = secrets.get(secretId);
    if (versions === undefined) {
      versions = new Map();
      secrets.set(secretId, versions);
    }
    versions.set(versionId, { text, stages: new Set() });
    for (const stage of stages) moveStage(versions, stage, versionId);
  };
  for (const [id, text] of Object.entries(initial)) put(id, text, randomUUID(), ['AWSCURRENT']);
  const calls: string[] = [];
  const double = {
    versions: secrets,
    failing: false,
    hanging: false,
    calls,
    beforeCall: undefined,
    values: {
      get: (id: string) => {
        const versions = secrets.get(id);
        const current = versions === undefined ? undefined : holderOf(versions, 'AWSCURRENT');
        return current === undefined ? undefined : versions!.get(current)!.text;
      },
      set: (id: string, text: string) => put(id, text, randomUUID(), ['AWSCURRENT']),
    },
  } as unknown as { -readonly [K in keyof SecretsDouble]: SecretsDouble[K] };

  const operations: Record<string, (input: Record<string, unknown>, versions: Versions) => unknown> = {
    GetSecretValue(input, versions) {
      const id =
        typeof input.VersionId === 'string'
          ? input.VersionId
          : holderOf(versions, String(input.VersionStage ?? 'AWSCURRENT'));
      const version = id === undefined ? undefined : versions.get(id);
      if (version === undefined) throw new Refusal('ResourceNotFoundException', 'no such version');
      const { SecretId } = input;
      return {
        ARN: SecretId,
        Name: SecretId,
        SecretString: version.text,
        VersionId: id,
        VersionStages: [...version.stages],
        CreatedDate: 1,
      };
    },
    PutSecretValue(input, versions) {
      const versionId = String(input.ClientRequestToken ?? randomUUID());
      const existing = versions.get(versionId);
      if (existing !== undefined && existing.text !== input.SecretString)
        throw new Refusal('ResourceExistsException', 'a version with this ClientRequestToken exists');
      const stages = (input.VersionStages as string[] | undefined) ?? ['AWSCURRENT'];
      if (existing === undefined) put(String(input.SecretId), String(input.SecretString), versionId, stages);
      return { ARN: input.SecretId, Name: input.SecretId, VersionId: versionId, VersionStages: stages };
    },
    UpdateSecretVersionStage(input, versions) {
      const stage = String(input.VersionStage);
      const to = input.MoveToVersionId as string | undefined;
      const from = input.RemoveFromVersionId as string | undefined;
      const holder = holderOf(versions, stage);
      if (to !== undefined && !versions.has(to))
        throw new Refusal('ResourceNotFoundException', 'no such version');
      if (holder !== undefined && holder !== to && from !== holder)
        throw new Refusal(
          'InvalidParameterException',
          `The staging label ${stage} is currently attached to version ${holder}`,
        );
      moveStage(versions, stage, to);
      return { ARN: input.SecretId, Name: input.SecretId };
    },
    DescribeSecret(input, versions) {
      return {
        ARN: input.SecretId,
        Name: input.SecretId,
        VersionIdsToStages: Object.fromEntries([...versions].map(([id, v]) => [id, [...v.stages]])),
      };
    },
  };

  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => {
      body += c.toString();
    });
    req.on('end', () => {
      const target = String(req.headers['x-amz-target'] ?? '');
      const input = JSON.parse(body || '{}') as Record<string, unknown>;
      const { SecretId } = input as { SecretId?: string };
      calls.push(`${target}:${SecretId}`);
      if (double.hanging) return;
      const reply = (status: number, payload: unknown) => {
        res.writeHead(status, { 'content-type': 'application/x-amz-json-1.1' });
        res.end(JSON.stringify(payload));
      };
      if (double.failing) return reply(500, { __type: 'InternalServiceError', message: 'injected failure' });
      const name = target.replace(/^secretsmanager\./, '');
      const operation = operations[name];
      if (operation === undefined) return reply(400, { __type: 'InvalidRequestException' });
      try {
        double.beforeCall?.(name, input);
        const versions = SecretId === undefined ? undefined : secrets.get(SecretId);
        if (versions === undefined) throw new Refusal('ResourceNotFoundException', 'no such secret');
        reply(200, operation(input, versions));
      } catch (err) {
        if (!(err instanceof Refusal)) throw err;
        reply(400, { __type: err.type, message: err.message });
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  double.endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  double.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return double as SecretsDouble;
}
