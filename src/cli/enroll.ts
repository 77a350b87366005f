import { readFileSync } from 'node:fs';
import type { FleetDevice } from '../shared/balena-directory';
import { type DeviceRecord, isTerminal, type Job, uuidSchema } from '../shared/domain';
import { JobConflictError } from '../shared/errors';
import type { CreateJobInput, CreateJobOutcome } from '../shared/job-store';
import { chunk, mapLimit } from './concurrency';
import { UsageError } from './errors';
import { type CliIo, note, printJson, printLine } from './io';
import { startProgress } from './progress';
import { formatTable } from './table';
import type { CliContext } from './target';
import { describeFailures, failureRows, waitForJobs, waitJson } from './wait';

export interface EnrollOptions {
  readonly fleet: string;
  readonly onlineOnly?: boolean;
  readonly uuids?: string;
  readonly dryRun?: boolean;
  readonly wait?: boolean;
  readonly concurrency: number;
  readonly timeout: number;
  readonly json?: boolean;
}

/** Devices per createJobs call: one DynamoDB transaction (two items per device, under 100). */
const CHUNK = 25;
/** A queued job untouched for this long may have lost its message: enroll sends it again. */
const STALE_QUEUED_MS = 120_000;

type Skip = { uuid: string; reason: 'provisioned' | 'active_job' };
type Failure = { uuid: string; jobId?: string; code: string; message: string };

/**
 * Enrolls a fleet: lists its devices through balena, skips those already provisioned or with an
 * active job, records jobs in batched transactions and sends their messages in batches of 10.
 * A job whose message SQS refused is failed (`enqueue_failed`), so a re-run picks it up again.
 */
export async function enroll(ctx: CliContext, io: CliIo, options: EnrollOptions): Promise<number> {
  const wanted = options.uuids ? readUuidFile(options.uuids) : undefined;
  const directory = await ctx.balena();
  const listed = await directory.listFleetDevices(options.fleet, {
    onlineOnly: options.onlineOnly,
  });
  const failures: Failure[] = [];
  let devices: FleetDevice[] = listed;
  if (wanted) {
    const inFleet = new Set(listed.map((d) => d.uuid));
    devices = listed.filter((d) => wanted.has(d.uuid));
    for (const uuid of wanted) {
      if (!inFleet.has(uuid)) {
        failures.push({
          uuid,
          code: 'not_in_fleet',
          message: `not a${options.onlineOnly ? 'n online' : ''} device of ${options.fleet}`,
        });
      }
    }
  }

  const records = new Map(
    (await ctx.store.getDevices(devices.map((d) => d.uuid))).map((r) => [r.uuid, r]),
  );
  const skipped: Skip[] = [];
  const todo: FleetDevice[] = [];
  const active: DeviceRecord[] = [];
  for (const device of devices) {
    const record = records.get(device.uuid);
    if (record?.activeJobId) {
      skipped.push({ uuid: device.uuid, reason: 'active_job' });
      active.push(record);
    } else if (record?.state === 'provisioned') {
      skipped.push({ uuid: device.uuid, reason: 'provisioned' });
    } else {
      todo.push(device);
    }
  }

  if (options.dryRun) {
    const plan = {
      dryRun: true,
      fleet: options.fleet,
      listed: listed.length,
      wouldEnqueue: todo.map((d) => d.uuid),
      skippedDevices: skipped,
      failures,
    };
    if (options.json) printJson(io, plan);
    else {
      if (todo.length > 0) {
        printLine(
          io,
          formatTable(
            ['uuid', 'name', 'online', 'would'],
            todo.map((d) => [d.uuid, d.deviceName, d.isOnline ? 'yes' : 'no', 'enqueue']),
          ),
        );
      }
      printLine(
        io,
        `dry run: ${todo.length} would be enqueued, ${skipped.length} skipped, ${failures.length} failed (nothing written)`,
      );
    }
    return failures.length > 0 ? 1 : 0;
  }

  const { following, resent } = await resendStaleJobs(ctx, active);
  const enqueued: Job[] = [];
  const started = Date.now();
  const progress = startProgress(io, 'enroll', todo.length);
  try {
    await mapLimit(chunk(todo, CHUNK), options.concurrency, async (batch) => {
      const result = await enrollBatch(ctx, batch);
      enqueued.push(...result.enqueued);
      skipped.push(...result.skipped);
      failures.push(...result.failures);
      progress.increment(batch.length);
    });
  } finally {
    progress.stop();
  }
  const seconds = (Date.now() - started) / 1000;

  const summary = `enrolled: ${enqueued.length} enqueued, ${skipped.length} skipped, ${failures.length} failed`;
  if (!options.json) {
    if (resent.length > 0) {
      note(io, `re-sent the message of ${resent.length} queued job(s) idle for over 2 minutes`);
    }
    if (failures.length > 0)
      printLine(io, formatTable(['uuid', 'job', 'error'], failureRows(failures)));
    printLine(io, summary);
    if (enqueued.length > 0) {
      note(
        io,
        `enqueue took ${seconds.toFixed(1)}s (${(enqueued.length / Math.max(seconds, 0.001)).toFixed(1)} devices/s)`,
      );
    }
  }

  let waited: Awaited<ReturnType<typeof waitForJobs>> | undefined;
  if (options.wait && enqueued.length + following.length > 0) {
    waited = await waitForJobs(
      ctx,
      io,
      [...enqueued, ...following].map((j) => ({ jobId: j.jobId, uuid: j.uuid })),
      { label: 'provision', timeoutMs: options.timeout * 1000 },
    );
    if (!options.json) describeFailures(io, waited);
  }

  if (options.json) {
    printJson(io, {
      fleet: options.fleet,
      enqueued: enqueued.length,
      skipped: skipped.length,
      failed: failures.length,
      jobs: enqueued.map((j) => ({ jobId: j.jobId, uuid: j.uuid })),
      resent: resent.map((j) => ({ jobId: j.jobId, uuid: j.uuid })),
      skippedDevices: skipped,
      failures,
      ...(waited ? { wait: waitJson(waited) } : {}),
    });
  }
  const waitFailed = waited ? waited.failed.length + waited.pending.length : 0;
  return failures.length > 0 || waitFailed > 0 ? 1 : 0;
}

async function enrollBatch(ctx: CliContext, batch: readonly FleetDevice[]) {
  const inputs: CreateJobInput[] = batch.map((d) => ({
    action: 'provision',
    uuid: d.uuid,
    request: {},
    requestedBy: 'cli',
  }));
  const failures: Failure[] = [];
  const skipped: Skip[] = [];
  const created: Job[] = [];
  // When the batch fails as a whole (after the SDK's own retries), each device is tried alone
  // so one bad device is reported instead of failing the batch; jobs the failed batch may have
  // recorded come back as 'active' and are recognised as ours below.
  let fellBack = false;
  let outcomes: Array<CreateJobOutcome | Failure>;
  try {
    outcomes = await ctx.store.createJobs(inputs);
  } catch {
    fellBack = true;
    outcomes = await mapLimit(inputs, 4, (input) => createOne(ctx, input));
  }
  for (const [i, outcome] of outcomes.entries()) {
    const uuid = batch[i]?.uuid as string;
    if ('code' in outcome) failures.push(outcome);
    else if (outcome.kind === 'created') created.push(outcome.job);
    else if (outcome.kind === 'provisioned') skipped.push({ uuid, reason: 'provisioned' });
    else if (fellBack && isOurs(outcome.job)) created.push(outcome.job);
    else skipped.push({ uuid, reason: 'active_job' });
  }

  const enqueued: Job[] = [];
  for (const group of chunk(created, 10)) {
    let refused: Set<string>;
    try {
      // An SDK retry after a lost answer may send some twice: harmless, the worker is idempotent.
      refused = new Set(await ctx.queue.enqueueMany(group.map((j) => j.jobId)));
    } catch {
      refused = new Set(group.map((j) => j.jobId));
    }
    for (const job of group) {
      if (!refused.has(job.jobId)) {
        enqueued.push(job);
        continue;
      }
      // No message will ever run this job: fail it so the device is free for a re-run.
      await ctx.store
        .fail(job, { code: 'enqueue_failed', message: 'the job could not be queued' })
        .catch(() => undefined);
      failures.push({
        uuid: job.uuid,
        jobId: job.jobId,
        code: 'enqueue_failed',
        message: 'SQS refused the message; the job was failed',
      });
    }
  }
  return { enqueued, skipped, failures };
}

async function createOne(
  ctx: CliContext,
  input: CreateJobInput,
): Promise<CreateJobOutcome | Failure> {
  try {
    return await ctx.store.createJob(input);
  } catch (error: unknown) {
    if (error instanceof JobConflictError) {
      return {
        uuid: input.uuid,
        jobId: error.activeJobId,
        code: 'job_conflict',
        message: error.message,
      };
    }
    return { uuid: input.uuid, code: 'store_error', message: errorMessage(error) };
  }
}

/**
 * A queued CLI job nobody has run yet: possibly recorded by an attempt that failed on the way
 * back. (Or by a concurrent enroll: then its message is sent twice, which is harmless.)
 */
function isOurs(job: Job): boolean {
  return job.requestedBy === 'cli' && job.status === 'queued' && job.attempts === 0;
}

/**
 * The provision jobs already active for skipped devices (`--wait` follows them too); those that
 * sat queued for over two minutes may have lost their message, so it is sent again (a duplicate
 * is harmless: the worker is idempotent).
 */
async function resendStaleJobs(ctx: CliContext, active: readonly DeviceRecord[]) {
  const jobs = await mapLimit(active, 8, (r) => ctx.store.getJob(r.activeJobId as string));
  const following = jobs.filter(
    (job): job is Job => job?.action === 'provision' && !isTerminal(job.status),
  );
  const resent = following.filter(
    (job) => job.status === 'queued' && Date.now() - Date.parse(job.updatedAt) > STALE_QUEUED_MS,
  );
  for (const group of chunk(resent, 10)) {
    await ctx.queue.enqueueMany(group.map((j) => j.jobId));
  }
  return { following, resent };
}

function readUuidFile(file: string): Set<string> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error: unknown) {
    throw new UsageError(`cannot read --uuids file ${file}: ${errorMessage(error)}`);
  }
  const uuids = new Set<string>();
  for (const [i, raw] of text.split(/\r?\n/).entries()) {
    const line = raw.replace(/#.*/, '').trim();
    if (!line) continue;
    if (!uuidSchema.safeParse(line).success) {
      throw new UsageError(
        `${file}:${i + 1}: '${line}' is not a balena device uuid (32 or 62 hex)`,
      );
    }
    uuids.add(line);
  }
  if (uuids.size === 0) throw new UsageError(`--uuids file ${file} lists no device`);
  return uuids;
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
