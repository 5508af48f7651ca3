import http from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A Secrets Manager double on 127.0.0.1 speaking the real wire protocol (JSON 1.1, `x-amz-target:
 * secretsmanager.GetSecretValue`), for code that reaches it through `AWS_ENDPOINT_URL_SECRETS_MANAGER`.
 */
export interface SecretsDouble {
  readonly endpoint: string;
  readonly values: Map<string, string>;
  /** While true, every call fails with a 500 InternalServiceError. */
  failing: boolean;
  /** While true, calls are accepted and never answered. */
  hanging: boolean;
  readonly calls: string[];
  close(): Promise<void>;
}

export async function startSecretsDouble(initial: Record<string, string>): Promise<SecretsDouble> {
  const values = new Map(Object.entries(initial));
  const calls: string[] = [];
  const double = { values, failing: false, hanging: false, calls } as {
    -readonly [K in keyof SecretsDouble]: SecretsDouble[K];
  };
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => {
      body += c.toString();
    });
    req.on('end', () => {
      const target = String(req.headers['x-amz-target'] ?? '');
      const { SecretId } = JSON.parse(body || '{}') as { SecretId?: string };
      calls.push(`${target}:${SecretId}`);
      if (double.hanging) return;
      const reply = (status: number, payload: unknown) => {
        res.writeHead(status, { 'content-type': 'application/x-amz-json-1.1' });
        res.end(JSON.stringify(payload));
      };
      if (double.failing) return reply(500, { __type: 'InternalServiceError', message: 'injected failure' });
      if (target !== 'secretsmanager.GetSecretValue')
        return reply(400, { __type: 'InvalidRequestException' });
      const value = SecretId === undefined ? undefined : values.get(SecretId);
      if (value === undefined)
        return reply(400, { __type: 'ResourceNotFoundException', message: 'no such secret' });
      reply(200, { ARN: SecretId, Name: SecretId, SecretString: value, VersionId: 'v1', CreatedDate: 1 });
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
