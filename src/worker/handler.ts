import { randomUUID } from 'node:crypto';
import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { AppError, LeaseHeldError, PoisonMessageError, TransientError } from '../shared/errors';
import { logger, metrics } from '../shared/observability';
import { jobMessageSchema, type WorkQueue } from '../shared/queue';
import { type BackoffPolicy, backoffSeconds } from './backoff';
import { runJob, type StepDeps } from './steps';

export interface WorkerDeps extends StepDeps {
  readonly queue: WorkQueue;
  /** Must equal the queue's redrive maxReceiveCount. */
  readonly maxReceiveCount: number;
  readonly backoff: BackoffPolicy;
}

/** Handles one SQS record: run the job; on failure set the retry delay and report the record failed. */
export function makeRecordHandler(deps: WorkerDeps) {
  return async (record: SQSRecord, context?: Context): Promise<void> => {
    const receiveCount = Number(record.attributes.ApproximateReceiveCount ?? '1');
    const message = parseMessage(record.body);
    if (!message) {
      logger.error('poison message', { messageId: record.messageId });
      await deps.queue.delay(record.receiptHandle, 0);
      throw new PoisonMessageError('the message body is not a job message', 'malformed_message');
    }
    const { jobId } = message;
    const owner = randomUUID();
    logger.appendKeys({ jobId, messageId: record.messageId });
    try {
      const remaining = context?.getRemainingTimeInMillis?.();
      const deadline = remaining === undefined ? undefined : Date.now() + remaining - 500;
      const outcome = await runJob(deps, jobId, owner, deadline);
      logger.info('job processed', { outcome, receiveCount });
      if (outcome !== 'skipped')
        metrics.addMetric(`Jobs${capitalize(outcome)}`, MetricUnit.Count, 1);
    } catch (error: unknown) {
      await handleFailure(deps, record, jobId, owner, receiveCount, error);
      throw error;
    } finally {
      logger.removeKeys(['jobId', 'messageId']);
    }
  };
}

async function handleFailure(
  deps: WorkerDeps,
  record: SQSRecord,
  jobId: string,
  owner: string,
  receiveCount: number,
  error: unknown,
): Promise<void> {
  if (error instanceof PoisonMessageError) {
    logger.error('poison message', { code: error.code });
    await deps.queue.delay(record.receiptHandle, 0);
    return;
  }
  const code = error instanceof AppError ? error.code : 'internal_error';
  const message = error instanceof Error ? error.message : String(error);
  if (error instanceof LeaseHeldError) {
    // A duplicate delivery while another worker runs the job: come back after its lease.
    logger.info('job busy elsewhere', { receiveCount });
    await deps.queue.delay(
      record.receiptHandle,
      Math.max(1, Math.ceil((error.retryAfterMs ?? 1000) / 1000)),
    );
    return;
  }
  logger.warn('job attempt failed', { code, detail: message, receiveCount });
  metrics.addMetric('JobAttemptsFailed', MetricUnit.Count, 1);
  if (receiveCount >= deps.maxReceiveCount) {
    // SQS moves the message to the DLQ on its next receive; make the job visibly failed now.
    const job = await deps.store.getJob(jobId);
    if (job) {
      const exhausted = { code: 'retries_exhausted', message: `${code}: ${message}` };
      // With the lease we hold; or, when this attempt never got it (the error came from taking
      // it), only if no other worker holds it now.
      await deps.store
        .fail(job, exhausted, owner)
        .catch(() => deps.store.fail(job, exhausted))
        .catch((failError: unknown) => logger.error('could not mark job failed', { failError }));
    }
    await deps.queue.delay(record.receiptHandle, 0);
    return;
  }
  await deps.store.release(jobId, owner, { code, message });
  const retryAfterMs = error instanceof TransientError ? error.retryAfterMs : undefined;
  await deps.queue.delay(
    record.receiptHandle,
    backoffSeconds(deps.backoff, receiveCount, retryAfterMs),
  );
}

function capitalize(word: string): string {
  return word.charAt(0).toUpperCase() + word.slice(1);
}

function parseMessage(body: string): { jobId: string } | undefined {
  try {
    const parsed = jobMessageSchema.safeParse(JSON.parse(body));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

/** The worker Lambda handler: an SQS batch with partial batch failures. */
export function makeHandler(deps: WorkerDeps) {
  const recordHandler = makeRecordHandler(deps);
  return async (event: SQSEvent, context: Context): Promise<SQSBatchResponse> => {
    const processor = new BatchProcessor(EventType.SQS);
    try {
      return await processPartialResponse(event, recordHandler, processor, {
        context,
        throwOnFullBatchFailure: false,
      });
    } finally {
      metrics.publishStoredMetrics();
    }
  };
}
