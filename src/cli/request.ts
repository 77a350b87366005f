import type { RequestOutcome } from '../api/service';
import { withRetry } from './concurrency';
import type { CliContext } from './target';

/**
 * A single job through the shared ProvisioningService (which fails the job when SQS refuses its
 * message), retried on accidents. When an attempt recorded the job but lost the answer, the
 * retry finds it 'active' and unsent: it is sent then, and reported as created.
 */
export async function requestJob(
  ctx: CliContext,
  request: () => Promise<RequestOutcome>,
): Promise<RequestOutcome> {
  let retried = false;
  const outcome = await withRetry(request, {
    onRetry: () => {
      retried = true;
    },
  });
  const job = outcome.job;
  if (
    retried &&
    outcome.kind === 'active' &&
    job?.status === 'queued' &&
    job.attempts === 0 &&
    job.requestedBy === 'cli'
  ) {
    await withRetry(() => ctx.queue.enqueue(job.jobId));
    return { kind: 'created', job };
  }
  return outcome;
}
