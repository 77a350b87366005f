import {
  type DeviceRecord,
  type Job,
  type JobStatus,
  publicDevice,
  publicJob,
  uuidSchema,
} from '../shared/domain';
import { CommandFailedError, UsageError } from './errors';
import { type CliIo, printJson, printLine } from './io';
import { formatRecord, formatTable, truncate } from './table';
import type { CliContext } from './target';

export const JOB_STATUSES: readonly JobStatus[] = ['queued', 'running', 'succeeded', 'failed'];

export interface ListJobsOptions {
  readonly status?: string;
  readonly fleet?: string;
  readonly limit: number;
  readonly json?: boolean;
}

/** `jobs list`: newest first, optionally by status and by fleet (through balena). */
export async function listJobs(ctx: CliContext, io: CliIo, options: ListJobsOptions) {
  const status = options.status;
  if (status !== undefined && !JOB_STATUSES.includes(status as JobStatus)) {
    throw new UsageError(`--status must be one of ${JOB_STATUSES.join(', ')}`);
  }
  let fleetUuids: Set<string> | undefined;
  if (options.fleet) {
    const directory = await ctx.balena();
    const devices = await directory.listFleetDevices(options.fleet);
    fleetUuids = new Set(devices.map((d) => d.uuid));
  }
  const all = await ctx.store.listJobs({
    ...(status ? { status: status as JobStatus } : {}),
    // A fleet filter applies after the read, so read everything then.
    limit: fleetUuids ? Number.POSITIVE_INFINITY : options.limit,
  });
  const jobs = (fleetUuids ? all.filter((j) => fleetUuids.has(j.uuid)) : all).slice(
    0,
    options.limit,
  );
  if (options.json) {
    printJson(io, { jobs: jobs.map(publicJob) });
    return 0;
  }
  if (jobs.length === 0) {
    printLine(io, 'no jobs');
    return 0;
  }
  printLine(
    io,
    formatTable(
      ['job', 'action', 'uuid', 'status', 'attempts', 'updated', 'error'],
      jobs.map((j) => [
        j.jobId,
        j.action,
        j.uuid,
        j.status,
        String(j.attempts),
        j.updatedAt,
        jobError(j),
      ]),
    ),
  );
  printLine(
    io,
    `${jobs.length} job(s)${jobs.length === options.limit ? ' (limit reached: --limit)' : ''}`,
  );
  return 0;
}

/** `jobs show <jobId|uuid>`: a device uuid shows the device's active job, else its latest. */
export async function showJob(ctx: CliContext, io: CliIo, id: string, json?: boolean) {
  let job: Job | undefined;
  if (uuidSchema.safeParse(id).success) {
    const device = await ctx.store.getDevice(id);
    const jobId = device?.activeJobId ?? device?.lastJobId;
    if (!jobId) throw new CommandFailedError(`no job for device ${id}`);
    job = await ctx.store.getJob(jobId);
  } else {
    job = await ctx.store.getJob(id);
  }
  if (!job) throw new CommandFailedError(`no job ${id}`);
  if (json) {
    printJson(io, publicJob(job));
    return 0;
  }
  const entries: [string, string][] = [
    ['job', job.jobId],
    ['action', job.action],
    ['uuid', job.uuid],
    ['status', job.status],
    ['attempts', String(job.attempts)],
    ['requested by', job.requestedBy],
    ['created', job.createdAt],
    ['updated', job.updatedAt],
  ];
  if (job.request.rotate) entries.push(['rotate', 'yes']);
  if (job.request.balenaService) entries.push(['service', job.request.balenaService]);
  if (job.error) entries.push(['error', `${job.error.code}: ${job.error.message}`]);
  if (job.lastError && job.status !== 'succeeded') {
    entries.push(['last error', `${job.lastError.code}: ${job.lastError.message}`]);
  }
  if (job.result) {
    entries.push(['thing', job.result.thingName]);
    if (job.result.certificateId) entries.push(['certificate', job.result.certificateId]);
    if (job.result.variables) {
      const v = job.result.variables;
      entries.push([
        'variables',
        `${v.names.join(', ')} (${v.level === 'service' ? `service ${v.service}` : 'device'})`,
      ]);
    }
    if (job.result.certificatesRetired) {
      entries.push(['retired', `${job.result.certificatesRetired} certificate(s)`]);
    }
  }
  printLine(io, formatRecord(entries));
  return 0;
}

/** `devices show <uuid>`: the device record and its latest job. */
export async function showDevice(ctx: CliContext, io: CliIo, uuid: string, json?: boolean) {
  if (!uuidSchema.safeParse(uuid).success) {
    throw new UsageError(`'${uuid}' is not a balena device uuid (32 or 62 hex characters)`);
  }
  const device: DeviceRecord | undefined = await ctx.store.getDevice(uuid);
  if (!device) throw new CommandFailedError(`device ${uuid} has no record: it was never enrolled`);
  const jobId = device.activeJobId ?? device.lastJobId;
  const job = jobId ? await ctx.store.getJob(jobId) : undefined;
  if (json) {
    printJson(io, { ...publicDevice(device), ...(job ? { job: publicJob(job) } : {}) });
    return 0;
  }
  const entries: [string, string][] = [
    ['uuid', device.uuid],
    ['state', device.state],
    ['thing', device.thingName ?? '-'],
    ['certificate', device.certificateId ?? '-'],
    ['service', device.balenaService ?? '-'],
    ['active job', device.activeJobId ?? '-'],
    ['last job', device.lastJobId ?? '-'],
    ['updated', device.updatedAt],
  ];
  if (job)
    entries.push([
      'job status',
      `${job.action} ${job.status}${jobError(job) ? ` (${jobError(job)})` : ''}`,
    ]);
  printLine(io, formatRecord(entries));
  return 0;
}

function jobError(job: Job): string {
  const error = job.error ?? (job.status !== 'succeeded' ? job.lastError : undefined);
  return error ? truncate(`${error.code}: ${error.message}`) : '';
}
