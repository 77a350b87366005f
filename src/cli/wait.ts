import { isTerminal, type Job } from '../shared/domain';
import { mapLimit, sleep, withRetry } from './concurrency';
import { type CliIo, printJson } from './io';
import { startProgress } from './progress';
import { formatTable } from './table';
import type { CliContext } from './target';

export interface WaitTarget {
  readonly jobId: string;
  readonly uuid: string;
}

export interface WaitOutcome {
  readonly succeeded: Job[];
  readonly failed: Job[];
  /** Jobs still queued or running when the timeout passed. */
  readonly pending: WaitTarget[];
}

export interface WaitOptions {
  readonly label: string;
  readonly timeoutMs: number;
  readonly pollMs?: number;
}

/**
 * Follows jobs to their end. Each round reads the devices in batches (a job is over once its
 * device no longer names it active) and reads only the jobs that ended, so polling a big
 * enrollment costs a few batch reads per round, not one read per job.
 */
export async function waitForJobs(
  ctx: CliContext,
  io: CliIo,
  targets: readonly WaitTarget[],
  options: WaitOptions,
): Promise<WaitOutcome> {
  const pollMs = options.pollMs ?? 500;
  const deadline = Date.now() + options.timeoutMs;
  const progress = startProgress(io, options.label, targets.length);
  const succeeded: Job[] = [];
  const failed: Job[] = [];
  let pending = [...targets];
  try {
    while (pending.length > 0) {
      const jobs = await withRetry(async () => {
        const records = await ctx.store.getDevices(pending.map((t) => t.uuid));
        const active = new Map(records.map((d) => [d.uuid, d.activeJobId]));
        const maybeDone = pending.filter((t) => active.get(t.uuid) !== t.jobId);
        return mapLimit(maybeDone, 16, (t) => ctx.store.getJob(t.jobId));
      });
      const ended = new Set<string>();
      for (const job of jobs) {
        if (!job || !isTerminal(job.status)) continue;
        ended.add(job.jobId);
        (job.status === 'succeeded' ? succeeded : failed).push(job);
      }
      if (ended.size > 0) progress.increment(ended.size);
      pending = pending.filter((t) => !ended.has(t.jobId));
      if (pending.length === 0 || Date.now() >= deadline) break;
      await sleep(pollMs);
    }
  } finally {
    progress.stop();
  }
  return { succeeded, failed, pending };
}

export interface FailureLine {
  readonly uuid: string;
  readonly jobId?: string;
  readonly code: string;
  readonly message: string;
}

export function failureRows(failures: readonly FailureLine[]): string[][] {
  return failures.map((f) => [f.uuid, f.jobId ?? '-', `${f.code}: ${f.message}`]);
}

/** After a wait: one summary line on stdout, and a table of the jobs that failed or did not end. */
export function describeFailures(io: CliIo, outcome: WaitOutcome): void {
  const rows = [
    ...outcome.failed.map((j) => [
      j.uuid,
      j.jobId,
      j.error ? `${j.error.code}: ${j.error.message}` : 'failed',
    ]),
    ...outcome.pending.map((t) => [t.uuid, t.jobId, 'still running when the wait timed out']),
  ];
  if (rows.length > 0) io.stdout.write(`${formatTable(['uuid', 'job', 'error'], rows)}\n`);
  io.stdout.write(
    `finished: ${outcome.succeeded.length} succeeded, ${outcome.failed.length} failed${
      outcome.pending.length > 0 ? `, ${outcome.pending.length} still running` : ''
    }\n`,
  );
}

/** The wait outcome as `--json` documents carry it. */
export function waitJson(outcome: WaitOutcome) {
  return {
    succeeded: outcome.succeeded.length,
    failed: outcome.failed.map((j) => ({ jobId: j.jobId, uuid: j.uuid, error: j.error })),
    pending: outcome.pending,
  };
}

/**
 * The common end of a command that enqueued jobs: with `wait`, follows them and lists failures;
 * with `json`, prints the results (and the wait outcome) as one document. Returns the exit code:
 * 1 when anything failed or is still pending.
 */
export async function followAndFinish(
  ctx: CliContext,
  io: CliIo,
  follow: readonly WaitTarget[],
  options: { wait?: boolean; json?: boolean; timeoutSeconds: number; label: string },
  results: unknown,
  failedCount: number,
): Promise<number> {
  let waited: WaitOutcome | undefined;
  if (options.wait && follow.length > 0) {
    waited = await waitForJobs(ctx, io, follow, {
      label: options.label,
      timeoutMs: options.timeoutSeconds * 1000,
    });
    if (!options.json) describeFailures(io, waited);
  }
  if (options.json) printJson(io, { results, ...(waited ? { wait: waitJson(waited) } : {}) });
  const waitFailed = waited ? waited.failed.length + waited.pending.length : 0;
  return failedCount > 0 || waitFailed > 0 ? 1 : 0;
}
