import type { DeviceRecord, Job, JobAction, JobRequest } from '../shared/domain';
import { isTerminal } from '../shared/domain';
import { QueueUnavailableError } from '../shared/errors';
import type { JobStore } from '../shared/job-store';
import { logger } from '../shared/observability';
import type { WorkQueue } from '../shared/queue';

export interface ProvisioningServiceDeps {
  readonly store: JobStore;
  readonly queue: WorkQueue;
  /** How often a long poll re-reads the job. */
  readonly pollIntervalMs?: number;
  /** A queued job older than this is sent again when its device asks again (lost message). */
  readonly requeueAfterMs?: number;
  readonly sleep?: (ms: number) => Promise<void>;
}

export type RequestOutcome =
  | { readonly kind: 'created' | 'active'; readonly job: Job }
  | { readonly kind: 'provisioned'; readonly job: Job | undefined; readonly device: DeviceRecord };

/** Records jobs, enqueues them, and answers their status; shared by the API routes and the CLI. */
export class ProvisioningService {
  private readonly pollIntervalMs: number;
  private readonly requeueAfterMs: number;
  private readonly sleep: (ms: number) => Promise<void>;

  constructor(private readonly deps: ProvisioningServiceDeps) {
    this.pollIntervalMs = deps.pollIntervalMs ?? 100;
    this.requeueAfterMs = deps.requeueAfterMs ?? 600_000;
    this.sleep = deps.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
  }

  /**
   * Records a job for the device and enqueues it, or returns the job already active (same action)
   * or, for a plain provision, the device's latest succeeded job when it is already provisioned.
   */
  async request(
    action: JobAction,
    uuid: string,
    request: JobRequest,
    requestedBy: string,
  ): Promise<RequestOutcome> {
    if (action === 'provision' && request.rotate && !request.balenaService) {
      // A rotation replaces the credentials where they are: at the service they were provisioned for.
      const device = await this.deps.store.getDevice(uuid);
      if (device?.balenaService) request = { ...request, balenaService: device.balenaService };
    }
    const outcome = await this.deps.store.createJob({ action, uuid, request, requestedBy });
    if (outcome.kind === 'created') {
      await this.enqueueOrCompensate(outcome.job);
      logger.info('job enqueued', { jobId: outcome.job.jobId, action });
    } else if (outcome.kind === 'active') {
      await this.requeueIfStale(outcome.job);
    }
    return outcome;
  }

  /** Deprovision keeps the service the device was provisioned for, so its variables go too. */
  async requestDeprovision(uuid: string, requestedBy: string, balenaService?: string) {
    const device = await this.deps.store.getDevice(uuid);
    const service = balenaService ?? device?.balenaService;
    return this.request(
      'deprovision',
      uuid,
      service ? { balenaService: service } : {},
      requestedBy,
    );
  }

  private async enqueueOrCompensate(job: Job): Promise<void> {
    try {
      await this.deps.queue.enqueue(job.jobId);
    } catch (error: unknown) {
      // The record exists but no message does: remove it so the device is not blocked by a job
      // that would never run, and tell the caller to try again.
      logger.error('enqueue failed; job discarded', { jobId: job.jobId, error });
      await this.deps.store.discard(job);
      throw new QueueUnavailableError({ cause: error });
    }
  }

  private async requeueIfStale(job: Job): Promise<void> {
    if (Date.now() - Date.parse(job.updatedAt) < this.requeueAfterMs) return;
    // An active job untouched for this long has likely lost its message (a crash between the
    // record and the send); a duplicate message is harmless because the worker is idempotent.
    await this.deps.queue.enqueue(job.jobId).catch((error: unknown) => {
      logger.warn('requeue of a stale job failed', { jobId: job.jobId, error });
    });
  }

  getJob(jobId: string): Promise<Job | undefined> {
    return this.deps.store.getJob(jobId);
  }

  getDevice(uuid: string): Promise<DeviceRecord | undefined> {
    return this.deps.store.getDevice(uuid);
  }

  /** Reads the job until it is terminal or `waitSeconds` pass; answers promptly once it ends. */
  async waitForJob(jobId: string, waitSeconds: number): Promise<Job | undefined> {
    const deadline = Date.now() + waitSeconds * 1000;
    let job = await this.deps.store.getJob(jobId);
    while (job && !isTerminal(job.status) && Date.now() < deadline) {
      await this.sleep(Math.min(this.pollIntervalMs, Math.max(0, deadline - Date.now())));
      job = await this.deps.store.getJob(jobId);
    }
    return job;
  }
}
