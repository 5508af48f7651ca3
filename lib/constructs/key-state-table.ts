import { RemovalPolicy } from 'aws-cdk-lib';
import { AttributeType, Billing, TableEncryptionV2, TableV2 } from 'aws-cdk-lib/aws-dynamodb';
import { Construct } from 'constructs';

export interface KeyStateTableProps {
  /**
   * What happens to the table when the stack is deleted.
   * @default RemovalPolicy.RETAIN
   */
  readonly removalPolicy?: RemovalPolicy;
}

/**
 * The key-state table shared by every proxy instance: string `pk`/`sk`, on-demand, encrypted,
 * point-in-time recovery, TTL on `ttl` (which only tidies; conditional writes hold the truth).
 */
export class KeyStateTable extends Construct {
  public readonly table: TableV2;

  constructor(scope: Construct, id: string, props: KeyStateTableProps = {}) {
    super(scope, id);
    this.table = new TableV2(this, 'Table', {
      partitionKey: { name: 'pk', type: AttributeType.STRING },
      sortKey: { name: 'sk', type: AttributeType.STRING },
      billing: Billing.onDemand(),
      encryption: TableEncryptionV2.awsManagedKey(),
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      timeToLiveAttribute: 'ttl',
      removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
    });
  }
}
