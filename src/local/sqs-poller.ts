import { randomUUID } from 'node:crypto';
import {
  DeleteMessageBatchCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';

export type WorkerHandler = (event: SQSEvent, context: Context) => Promise<SQSBatchResponse>;

export interface PollerOptions {
  readonly queueUrl: string;
  readonly batchSize?: number;
  /** Parallel pollers: Lambda's maximum concurrency for the event source. */
  readonly concurrency?: number;
  readonly waitTimeSeconds?: number;
  readonly region?: string;
  /**
   * Like Lambda's function timeout: an invocation still running after this is abandoned (its
   * messages stay in SQS and come back after their visibility timeout). Default 60 s.
   */
  readonly invocationTimeoutMs?: number;
}

/**
 * Invokes a worker handler the way Lambda's SQS event source mapping does: receive a batch,
 * invoke, delete the records not reported in `batchItemFailures`, leave the rest to SQS.
 */
export class SqsPoller {
  private running = false;
  private loops: Promise<void>[] = [];
  private queueArn = 'arn:aws:sqs:us-east-1:000000000000:local';
  invocations = 0;
  timeouts = 0;
  /** Total time spent in handler invocations (what Lambda bills as duration). */
  busyMs = 0;

  constructor(
    private readonly sqs: SQSClient,
    private readonly handler: WorkerHandler,
    private readonly options: PollerOptions,
  ) {}

  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    const attributes = await this.sqs.send(
      new GetQueueAttributesCommand({
        QueueUrl: this.options.queueUrl,
        AttributeNames: ['QueueArn'],
      }),
    );
    this.queueArn = attributes.Attributes?.QueueArn ?? this.queueArn;
    const concurrency = this.options.concurrency ?? 2;
    this.loops = Array.from({ length: concurrency }, () => this.loop());
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.allSettled(this.loops);
    this.loops = [];
  }

  private async loop(): Promise<void> {
    while (this.running) {
      try {
        await this.pollOnce();
      } catch {
        // A failed receive or invocation: the messages stay in SQS; back off briefly like Lambda.
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
  }

  private async pollOnce(): Promise<void> {
    const out = await this.sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: this.options.queueUrl,
        MaxNumberOfMessages: this.options.batchSize ?? 10,
        WaitTimeSeconds: this.options.waitTimeSeconds ?? 1,
        MessageSystemAttributeNames: ['All'],
        MessageAttributeNames: ['All'],
      }),
    );
    const messages = out.Messages ?? [];
    if (messages.length === 0 || (!this.running && messages.length === 0)) return;
    const records: SQSRecord[] = messages.map((m) => ({
      messageId: m.MessageId ?? randomUUID(),
      receiptHandle: m.ReceiptHandle ?? '',
      body: m.Body ?? '',
      attributes: {
        ApproximateReceiveCount: m.Attributes?.ApproximateReceiveCount ?? '1',
        SentTimestamp: m.Attributes?.SentTimestamp ?? String(Date.now()),
        SenderId: m.Attributes?.SenderId ?? 'local',
        ApproximateFirstReceiveTimestamp:
          m.Attributes?.ApproximateFirstReceiveTimestamp ?? String(Date.now()),
      },
      messageAttributes: {},
      md5OfBody: m.MD5OfBody ?? '',
      eventSource: 'aws:sqs',
      eventSourceARN: this.queueArn,
      awsRegion: this.options.region ?? 'us-east-1',
    }));
    this.invocations++;
    const timeoutMs = this.options.invocationTimeoutMs ?? 60_000;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), timeoutMs);
    });
    const startedAt = performance.now();
    const response = await Promise.race([
      this.handler({ Records: records }, localContext(timeoutMs)),
      timedOut,
    ]).finally(() => {
      clearTimeout(timer);
      this.busyMs += performance.now() - startedAt;
    });
    if (response === 'timeout') {
      this.timeouts++;
      return;
    }
    const failed = new Set(response?.batchItemFailures?.map((f) => f.itemIdentifier) ?? []);
    const done = records.filter((r) => !failed.has(r.messageId));
    if (done.length === 0) return;
    await this.sqs.send(
      new DeleteMessageBatchCommand({
        QueueUrl: this.options.queueUrl,
        Entries: done.map((r, i) => ({ Id: String(i), ReceiptHandle: r.receiptHandle })),
      }),
    );
  }
}

function localContext(timeoutMs: number): Context {
  const deadline = Date.now() + timeoutMs;
  return {
    callbackWaitsForEmptyEventLoop: false,
    functionName: 'local-worker',
    functionVersion: '$LATEST',
    invokedFunctionArn: 'arn:aws:lambda:us-east-1:000000000000:function:local-worker',
    memoryLimitInMB: '512',
    awsRequestId: randomUUID(),
    logGroupName: 'local',
    logStreamName: 'local',
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    done: () => undefined,
    fail: () => undefined,
    succeed: () => undefined,
  };
}
