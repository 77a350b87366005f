import { z } from 'zod';

export type JobAction = 'provision' | 'deprovision';
export type JobStatus = 'queued' | 'running' | 'succeeded' | 'failed';
export const TERMINAL_STATUSES: readonly JobStatus[] = ['succeeded', 'failed'];

/** balena device uuids are 32 (current) or 62 (legacy) lowercase hex characters. */
export const uuidSchema = z
  .string()
  .regex(/^([0-9a-f]{32}|[0-9a-f]{62})$/, 'must be 32 or 62 lowercase hex characters');

export interface JobError {
  readonly code: string;
  readonly message: string;
}

/** What the caller asked for, kept on the job so a retry or replay does the same thing. */
export interface JobRequest {
  readonly balenaService?: string;
  readonly csr?: string;
  readonly rotate?: boolean;
}

/** Where the credentials were written. */
export interface VariableTarget {
  readonly level: 'device' | 'service';
  readonly service?: string;
  readonly names: readonly string[];
}

export interface JobResult {
  readonly thingName: string;
  readonly certificateId?: string;
  readonly certificateArn?: string;
  readonly variables?: VariableTarget;
  /** CSR mode only: the issued certificate (public). */
  readonly certificatePem?: string;
  /** Deprovision: how many certificates were retired. */
  readonly certificatesRetired?: number;
}

/** A certificate-issuing attempt, recorded before IoT is called so an interrupted one can be found. */
export interface IssueAttempt {
  /** sha256 of the public key (SPKI DER), hex. */
  readonly keyFingerprint: string;
  readonly startedAt: string;
}

/** Progress saved by the worker; a redelivered message resumes from here. */
export interface Checkpoints {
  balenaDeviceId?: number;
  serviceInstallId?: number;
  deviceMissing?: boolean;
  thingReady?: boolean;
  /** This job created the thing, so it holds no certificate but this job's own. */
  thingCreated?: boolean;
  issueAttempts?: IssueAttempt[];
  certificateId?: string | null;
  certificateArn?: string | null;
  certificatePem?: string | null;
  /** Fingerprint of the key of `certificateId`. */
  keyFingerprint?: string | null;
  /** The certificate id whose credentials are in the balena variables. */
  deliveredCertificateId?: string | null;
  retiredCertificates?: string[];
  thingDeleted?: boolean;
  variablesRemoved?: boolean;
}

export interface Job {
  readonly jobId: string;
  readonly action: JobAction;
  readonly uuid: string;
  readonly status: JobStatus;
  readonly attempts: number;
  readonly createdAt: string;
  readonly updatedAt: string;
  readonly request: JobRequest;
  readonly result?: JobResult;
  readonly error?: JobError;
  /** The last transient error, while the job is being retried. */
  readonly lastError?: JobError;
  readonly checkpoints: Checkpoints;
  /** Who asked: 'device', 'operator', 'legacy' or 'cli'. */
  readonly requestedBy: string;
}

export type DeviceState = 'unprovisioned' | 'provisioned' | 'deprovisioned' | 'failed';

export interface DeviceRecord {
  readonly uuid: string;
  readonly state: DeviceState;
  readonly activeJobId?: string;
  readonly lastJobId?: string;
  /** The latest succeeded provision job, answered to a repeated POST. */
  readonly provisionJobId?: string;
  readonly thingName?: string;
  readonly certificateId?: string;
  readonly certificateArn?: string;
  readonly balenaService?: string;
  readonly updatedAt: string;
}

/** The job as the API and CLI show it: no checkpoints, no internals. */
export function publicJob(job: Job): Record<string, unknown> {
  return {
    jobId: job.jobId,
    action: job.action,
    uuid: job.uuid,
    status: job.status,
    attempts: job.attempts,
    createdAt: job.createdAt,
    updatedAt: job.updatedAt,
    ...(job.request.balenaService ? { balenaService: job.request.balenaService } : {}),
    ...(job.request.rotate ? { rotate: true } : {}),
    ...(job.request.csr ? { csr: true } : {}),
    ...(job.result ? { result: job.result } : {}),
    ...(job.error ? { error: job.error } : {}),
    ...(job.lastError && job.status !== 'succeeded' ? { lastError: job.lastError } : {}),
  };
}

export function publicDevice(device: DeviceRecord): Record<string, unknown> {
  return {
    uuid: device.uuid,
    state: device.state,
    thingName: device.thingName ?? null,
    certificateId: device.certificateId ?? null,
    lastJobId: device.lastJobId ?? null,
    activeJobId: device.activeJobId ?? null,
    updatedAt: device.updatedAt,
  };
}

export function isTerminal(status: JobStatus): boolean {
  return TERMINAL_STATUSES.includes(status);
}
