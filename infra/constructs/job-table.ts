import { RemovalPolicy } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import { Construct } from 'constructs';

/** Index names and key attributes the job store (src/shared) relies on. */
export const JOB_TABLE_SCHEMA = {
  partitionKey: 'pk',
  sortKey: 'sk',
  gsi1: { indexName: 'gsi1', partitionKey: 'gsi1pk', sortKey: 'gsi1sk' },
  ttlAttribute: 'expiresAt',
} as const;

export interface JobTableProps {
  /**
   * Keep the table when the stack is deleted, and refuse deletes (deletion protection).
   * @default true
   */
  readonly retain?: boolean;
}

/**
 * Jobs and per-device state: on-demand capacity, point-in-time recovery, TTL on `expiresAt`,
 * and the `gsi1` index (projection ALL).
 */
export class JobTable extends Construct {
  readonly table: dynamodb.Table;

  constructor(scope: Construct, id: string, props: JobTableProps = {}) {
    super(scope, id);
    const retain = props.retain ?? true;
    const s = dynamodb.AttributeType.STRING;
    this.table = new dynamodb.Table(this, 'Table', {
      partitionKey: { name: JOB_TABLE_SCHEMA.partitionKey, type: s },
      sortKey: { name: JOB_TABLE_SCHEMA.sortKey, type: s },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      timeToLiveAttribute: JOB_TABLE_SCHEMA.ttlAttribute,
      deletionProtection: retain,
      removalPolicy: retain ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY,
    });
    this.table.addGlobalSecondaryIndex({
      indexName: JOB_TABLE_SCHEMA.gsi1.indexName,
      partitionKey: { name: JOB_TABLE_SCHEMA.gsi1.partitionKey, type: s },
      sortKey: { name: JOB_TABLE_SCHEMA.gsi1.sortKey, type: s },
      projectionType: dynamodb.ProjectionType.ALL,
    });
  }
}
