import { Duration, Validations } from 'aws-cdk-lib';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';

export interface ProvisioningQueueProps {
  /**
   * How long a received message stays invisible. Lambda's guidance for an SQS event source: at
   * least six times the function timeout (plus the batching window).
   */
  readonly visibilityTimeout: Duration;
  /** Receives before a message moves to the dead-letter queue. */
  readonly maxReceiveCount: number;
  /** @default 4 days */
  readonly retentionPeriod?: Duration;
}

/** The work queue and its dead-letter queue: SQS-managed encryption, TLS-only access. */
export class ProvisioningQueue extends Construct {
  readonly queue: sqs.Queue;
  readonly deadLetterQueue: sqs.Queue;

  constructor(scope: Construct, id: string, props: ProvisioningQueueProps) {
    super(scope, id);
    // A standard queue keeps a message's original enqueue time when it moves to the DLQ, so the
    // DLQ keeps the 14-day maximum: an operator has two weeks to replay a failed job.
    this.deadLetterQueue = new sqs.Queue(this, 'DeadLetterQueue', {
      retentionPeriod: Duration.days(14),
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
    });
    Validations.of(this.deadLetterQueue).acknowledge({
      id: 'AwsSolutions-SQS3',
      reason: 'This queue is the dead-letter queue of the work queue; it needs no DLQ of its own.',
    });

    this.queue = new sqs.Queue(this, 'Queue', {
      visibilityTimeout: props.visibilityTimeout,
      retentionPeriod: props.retentionPeriod ?? Duration.days(4),
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      deadLetterQueue: { queue: this.deadLetterQueue, maxReceiveCount: props.maxReceiveCount },
    });
  }
}
