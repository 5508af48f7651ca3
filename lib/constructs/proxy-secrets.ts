import { RemovalPolicy, SecretValue, Validations } from 'aws-cdk-lib';
import { Secret } from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';

/** The value the stack creates; the proxy answers 503 "not configured yet" while it is in place. */
export const KEYS_PLACEHOLDER = '{"groups":[]}';
export const TOKENS_PLACEHOLDER = '{"tokens":[]}';

export interface ProxySecretsProps {
  /** @default RemovalPolicy.RETAIN */
  readonly removalPolicy?: RemovalPolicy;
}

/**
 * Two secrets: the Gemini keys (`{"groups":[…]}`, the config file's groups) and the client tokens,
 * stored only as SHA-256 hashes (`{"tokens":[{"sha256":"…","rpm":60}]}`). Created with placeholders;
 * the operator puts the real values in with the AWS CLI (README, "Deploy").
 */
export class ProxySecrets extends Construct {
  public readonly keys: Secret;
  public readonly tokens: Secret;

  constructor(scope: Construct, id: string, props: ProxySecretsProps = {}) {
    super(scope, id);
    const removalPolicy = props.removalPolicy ?? RemovalPolicy.RETAIN;
    this.keys = new Secret(this, 'GeminiKeys', {
      description: 'Gemini API keys for the proxy: {"groups":[{"name":"…","api_keys":["…"]}]}',
      secretStringValue: SecretValue.unsafePlainText(KEYS_PLACEHOLDER),
      removalPolicy,
    });
    this.tokens = new Secret(this, 'ClientTokens', {
      description: 'SHA-256 hashes of the proxy client tokens: {"tokens":[{"sha256":"…","rpm":60}]}',
      secretStringValue: SecretValue.unsafePlainText(TOKENS_PLACEHOLDER),
      removalPolicy,
    });
    for (const secret of [this.keys, this.tokens]) {
      Validations.of(secret).acknowledge({
        id: 'AwsSolutions-SMG4',
        reason:
          'Gemini API keys and client tokens are issued outside AWS (AI Studio, the operator); no rotation function can mint new ones, so rotation is the operator editing the secret, which the proxy picks up within its cache age.',
      });
    }
  }
}
