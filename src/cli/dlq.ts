import {
  ChangeMessageVisibilityBatchCommand,
  DeleteMessageBatchCommand,
  type Message,
  ReceiveMessageCommand,
  SendMessageBatchCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import type { Job } from '../shared/domain';
import { jobMessageSchema } from '../shared/queue';
import { chunk, mapLimit, rateLimiter } from './concurrency';
import { UsageError } from './errors';
import { type CliIo, printJson, printLine } from './io';
import { formatTable, truncate } from './table';
import type { CliContext } from './target';
import { followAndFinish } from './wait';

interface DlqMessage {
  readonly messageId: string;
  readonly receiptHandle: string;
  readonly body: string;
  readonly jobId?: string;
  readonly receiveCount: number;
  readonly sentAt?: string;
}

/** While listing or replaying, received DLQ messages stay hidden this long, then reappear by themselves. */
const HOLD_SECONDS = 60;

/**
 * Receives one batch from the DLQ, hiding it for `holdSeconds`. SQS has no peek: a message
 * received here is hidden, never deleted, and `release` makes it visible again at once.
 */
async function receiveBatch(sqs: SQSClient, dlqUrl: string, holdSeconds: number) {
  const out = await sqs.send(
    new ReceiveMessageCommand({
      QueueUrl: dlqUrl,
      MaxNumberOfMessages: 10,
      // Long polling asks every SQS server, so an empty answer means the queue is drained.
      WaitTimeSeconds: 1,
      VisibilityTimeout: holdSeconds,
      MessageSystemAttributeNames: ['ApproximateReceiveCount', 'SentTimestamp'],
    }),
  );
  return (out.Messages ?? []).map(toDlqMessage);
}

function toDlqMessage(m: Message): DlqMessage {
  const body = m.Body ?? '';
  let jobId: string | undefined;
  try {
    const parsed = jobMessageSchema.safeParse(JSON.parse(body));
    if (parsed.success) jobId = parsed.data.jobId;
  } catch {
    jobId = undefined;
  }
  const sent = Number(m.Attributes?.SentTimestamp);
  return {
    messageId: m.MessageId ?? '',
    receiptHandle: m.ReceiptHandle ?? '',
    body,
    jobId,
    receiveCount: Number(m.Attributes?.ApproximateReceiveCount ?? 0),
    ...(Number.isFinite(sent) && sent > 0 ? { sentAt: new Date(sent).toISOString() } : {}),
  };
}

/** Makes received messages visible again (best effort: otherwise they reappear after the hold). */
async function release(sqs: SQSClient, dlqUrl: string, messages: readonly DlqMessage[]) {
  for (const group of chunk(messages, 10)) {
    await sqs
      .send(
        new ChangeMessageVisibilityBatchCommand({
          QueueUrl: dlqUrl,
          Entries: group.map((m, i) => ({
            Id: String(i),
            ReceiptHandle: m.receiptHandle,
            VisibilityTimeout: 0,
          })),
        }),
      )
      .catch(() => undefined);
  }
}

/** `dlq list`: every DLQ message joined with its job, without consuming any. */
export async function listDlq(
  ctx: CliContext,
  io: CliIo,
  options: { json?: boolean; max: number },
) {
  const { sqs } = ctx.aws;
  const dlqUrl = ctx.target.dlqUrl;
  const messages: DlqMessage[] = [];
  try {
    while (messages.length < options.max) {
      const batch = await receiveBatch(sqs, dlqUrl, HOLD_SECONDS);
      if (batch.length === 0) break;
      messages.push(...batch);
    }
  } finally {
    await release(sqs, dlqUrl, messages);
  }
  const jobs = await mapLimit(messages, 8, (m) =>
    m.jobId ? ctx.store.getJob(m.jobId) : Promise.resolve(undefined),
  );
  const entries = messages.map((m, i) => {
    const job = jobs[i];
    const error = job?.error ?? job?.lastError;
    return {
      messageId: m.messageId,
      jobId: m.jobId ?? null,
      uuid: job?.uuid ?? null,
      action: job?.action ?? null,
      status: job?.status ?? null,
      receiveCount: m.receiveCount,
      sentAt: m.sentAt ?? null,
      lastError: m.jobId
        ? (error ?? null)
        : { code: 'malformed_message', message: truncate(m.body, 200) },
    };
  });
  if (options.json) {
    printJson(io, { messages: entries, truncated: messages.length >= options.max });
    return 0;
  }
  if (entries.length === 0) {
    printLine(io, 'the DLQ is empty');
    return 0;
  }
  printLine(
    io,
    formatTable(
      ['job', 'uuid', 'action', 'status', 'receives', 'last error'],
      entries.map((e) => [
        e.jobId ?? '(malformed)',
        e.uuid ?? '-',
        e.action ?? '-',
        e.status ?? (e.jobId ? 'unknown job' : '-'),
        String(e.receiveCount),
        e.lastError ? truncate(`${e.lastError.code}: ${e.lastError.message}`) : '-',
      ]),
    ),
  );
  printLine(
    io,
    `${entries.length} message(s) in the DLQ${messages.length >= options.max ? ` (stopped at --max ${options.max})` : ''}`,
  );
  return 0;
}

export interface ReplayOptions {
  readonly all?: boolean;
  readonly job?: string[];
  readonly rate?: number;
  readonly wait?: boolean;
  readonly timeout: number;
  readonly json?: boolean;
}

type ReplayOutcome = 'replayed' | 'superseded' | 'already_succeeded' | 'unknown_job' | 'failed';

interface ReplayResult {
  readonly jobId: string;
  readonly uuid: string | null;
  readonly outcome: ReplayOutcome;
  readonly detail?: string;
}

/**
 * `dlq replay`: for each selected message, put its job back to queued, send the message to the
 * work queue, then delete it from the DLQ, in that order. Interrupted after the requeue, the
 * message reappears in the DLQ and a re-run sends it; interrupted after the send, a re-run sends
 * a duplicate, which the idempotent worker absorbs. A job another job has since replaced, or one
 * that already succeeded, is not run again: its stale message is deleted.
 */
export async function replayDlq(ctx: CliContext, io: CliIo, options: ReplayOptions) {
  const wanted = options.job && options.job.length > 0 ? new Set(options.job) : undefined;
  if (!options.all === !wanted) {
    throw new UsageError('dlq replay needs either --all or --job <id...>');
  }
  if (options.rate !== undefined && !(options.rate > 0)) {
    throw new UsageError('--rate must be a positive number of messages per second');
  }
  const { sqs } = ctx.aws;
  const dlqUrl = ctx.target.dlqUrl;
  const throttle = rateLimiter(options.rate);
  // Long enough for a batch of 10 at the chosen rate; left-over messages reappear after it.
  const hold = Math.max(HOLD_SECONDS, Math.ceil((10 / (options.rate ?? 10)) * 3));
  const results: ReplayResult[] = [];
  const kept: DlqMessage[] = [];
  const handled = new Set<string>();
  try {
    while (!wanted || [...wanted].some((id) => !handled.has(id))) {
      const batch = await receiveBatch(sqs, dlqUrl, hold);
      if (batch.length === 0) break;
      const selected: DlqMessage[] = [];
      for (const m of batch) {
        if (m.jobId && (!wanted || wanted.has(m.jobId))) selected.push(m);
        else kept.push(m);
      }
      const toSend: { message: DlqMessage; job: Job | undefined }[] = [];
      const toDelete: DlqMessage[] = [];
      for (const m of selected) {
        const jobId = m.jobId as string;
        if (handled.has(jobId)) {
          // Already handled in this run: a duplicate, or the replayed job failed again and
          // came back. Either way it is left in the DLQ for a later look.
          kept.push(m);
          continue;
        }
        handled.add(jobId);
        await throttle();
        const requeued = await ctx.store.requeue(jobId);
        const job = await ctx.store.getJob(jobId);
        if (requeued) {
          toSend.push({ message: m, job });
        } else {
          toDelete.push(m);
          results.push({
            jobId,
            uuid: job?.uuid ?? null,
            outcome: !job
              ? 'unknown_job'
              : job.status === 'succeeded'
                ? 'already_succeeded'
                : 'superseded',
            detail: !job
              ? 'the job does not exist'
              : job.status === 'succeeded'
                ? 'the job already succeeded'
                : 'another job has taken the device since',
          });
        }
      }
      if (toSend.length > 0) {
        // An SDK retry may send a message twice: harmless, the worker is idempotent.
        const sent = await ctx.aws.sqs.send(
          new SendMessageBatchCommand({
            QueueUrl: ctx.target.queueUrl,
            Entries: toSend.map((s, i) => ({ Id: String(i), MessageBody: s.message.body })),
          }),
        );
        const refused = new Map((sent.Failed ?? []).map((f) => [Number(f.Id), f]));
        for (const [i, s] of toSend.entries()) {
          const failure = refused.get(i);
          const jobId = s.message.jobId as string;
          if (failure) {
            kept.push(s.message);
            results.push({
              jobId,
              uuid: s.job?.uuid ?? null,
              outcome: 'failed',
              detail: `the work queue refused the message (${failure.Code}); it stays in the DLQ`,
            });
          } else {
            toDelete.push(s.message);
            results.push({ jobId, uuid: s.job?.uuid ?? null, outcome: 'replayed' });
          }
        }
      }
      await deleteMessages(sqs, dlqUrl, toDelete);
    }
  } finally {
    await release(sqs, dlqUrl, kept);
  }
  const missing = wanted ? [...wanted].filter((id) => !handled.has(id)) : [];
  for (const jobId of missing) {
    results.push({
      jobId,
      uuid: null,
      outcome: 'failed',
      detail: 'no message for this job in the DLQ',
    });
  }

  const count = (outcome: ReplayOutcome) => results.filter((r) => r.outcome === outcome).length;
  const replayed = results.filter((r) => r.outcome === 'replayed');
  if (!options.json && results.length > 0) {
    printLine(
      io,
      formatTable(
        ['job', 'uuid', 'outcome', 'detail'],
        results.map((r) => [r.jobId, r.uuid ?? '-', r.outcome, r.detail ?? '']),
      ),
    );
  }
  if (!options.json) {
    const others = results.length - count('replayed') - count('failed');
    printLine(
      io,
      `replay: ${count('replayed')} replayed, ${others} superseded or done, ${count('failed')} failed`,
    );
  }
  return followAndFinish(
    ctx,
    io,
    replayed.map((r) => ({ jobId: r.jobId, uuid: r.uuid ?? '' })),
    { wait: options.wait, json: options.json, timeoutSeconds: options.timeout, label: 'replay' },
    results,
    count('failed'),
  );
}

async function deleteMessages(sqs: SQSClient, dlqUrl: string, messages: readonly DlqMessage[]) {
  for (const group of chunk(messages, 10)) {
    await sqs.send(
      new DeleteMessageBatchCommand({
        QueueUrl: dlqUrl,
        Entries: group.map((m, i) => ({ Id: String(i), ReceiptHandle: m.receiptHandle })),
      }),
    );
  }
}
