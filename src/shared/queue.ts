import {
  ChangeMessageVisibilityCommand,
  SendMessageBatchCommand,
  SendMessageCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import { z } from 'zod';

/** The message body: it names the job and nothing else (no secrets, no request data). */
export const jobMessageSchema = z.object({ jobId: z.string().uuid() }).strict();
export type JobMessage = z.infer<typeof jobMessageSchema>;

/** Port: the work queue. */
export interface WorkQueue {
  enqueue(jobId: string): Promise<void>;
  /** Sends in batches of 10; returns the job ids SQS refused. */
  enqueueMany(jobIds: readonly string[]): Promise<string[]>;
  /** Hides a received message for `seconds` (the retry backoff). */
  delay(receiptHandle: string, seconds: number): Promise<void>;
}

export class SqsWorkQueue implements WorkQueue {
  constructor(
    private readonly sqs: SQSClient,
    private readonly queueUrl: string,
  ) {}

  async enqueue(jobId: string): Promise<void> {
    await this.sqs.send(
      new SendMessageCommand({
        QueueUrl: this.queueUrl,
        MessageBody: JSON.stringify({ jobId } satisfies JobMessage),
      }),
    );
  }

  async enqueueMany(jobIds: readonly string[]): Promise<string[]> {
    const refused: string[] = [];
    for (let i = 0; i < jobIds.length; i += 10) {
      const chunk = jobIds.slice(i, i + 10);
      const out = await this.sqs.send(
        new SendMessageBatchCommand({
          QueueUrl: this.queueUrl,
          Entries: chunk.map((jobId, n) => ({
            Id: String(n),
            MessageBody: JSON.stringify({ jobId } satisfies JobMessage),
          })),
        }),
      );
      for (const failed of out.Failed ?? []) {
        const jobId = chunk[Number(failed.Id)];
        if (jobId) refused.push(jobId);
      }
    }
    return refused;
  }

  async delay(receiptHandle: string, seconds: number): Promise<void> {
    await this.sqs.send(
      new ChangeMessageVisibilityCommand({
        QueueUrl: this.queueUrl,
        ReceiptHandle: receiptHandle,
        VisibilityTimeout: Math.max(0, Math.min(43_200, Math.round(seconds))),
      }),
    );
  }
}
