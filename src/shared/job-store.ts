import { randomUUID } from 'node:crypto';
import {
  ConditionalCheckFailedException,
  TransactionCanceledException,
} from '@aws-sdk/client-dynamodb';
import {
  BatchGetCommand,
  type BatchGetCommandOutput,
  type DynamoDBDocumentClient,
  GetCommand,
  QueryCommand,
  ScanCommand,
  TransactWriteCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import type {
  Checkpoints,
  DeviceRecord,
  IssueAttempt,
  Job,
  JobAction,
  JobError,
  JobRequest,
  JobResult,
  JobStatus,
} from './domain';
import { AppError, JobConflictError, LeaseHeldError } from './errors';

export interface CreateJobInput {
  readonly action: JobAction;
  readonly uuid: string;
  readonly request: JobRequest;
  readonly requestedBy: string;
}

/** What `createJob` did: made a job, found the active one, or found the device already provisioned. */
export type CreateJobOutcome =
  | { readonly kind: 'created'; readonly job: Job }
  | { readonly kind: 'active'; readonly job: Job }
  | { readonly kind: 'provisioned'; readonly job: Job | undefined; readonly device: DeviceRecord };

/** Device fields written when a job succeeds. */
export interface DeviceOutcome {
  readonly thingName?: string;
  readonly certificateId?: string;
  readonly certificateArn?: string;
  readonly balenaService?: string;
}

export interface ListJobsOptions {
  readonly status?: JobStatus;
  readonly limit?: number;
}

/** Port: durable jobs and per-device state with race-free transitions. */
export interface JobStore {
  /** Records a job unless the device has an active one (returned instead) or is already provisioned. */
  createJob(input: CreateJobInput): Promise<CreateJobOutcome>;
  /** Bulk createJob for fleet enrollment, in batched transactions; outcomes in input order. */
  createJobs(inputs: readonly CreateJobInput[]): Promise<CreateJobOutcome[]>;
  /** Device records by uuid (missing ones omitted), read in batches. */
  getDevices(uuids: readonly string[]): Promise<DeviceRecord[]>;
  getJob(jobId: string): Promise<Job | undefined>;
  getDevice(uuid: string): Promise<DeviceRecord | undefined>;
  /** Takes the job's lease for `owner` and counts an attempt; throws LeaseHeldError while another holds it. */
  acquire(jobId: string, owner: string, leaseMs: number): Promise<Job | undefined>;
  /** Saves progress; fenced: fails if `owner` no longer holds the lease. */
  checkpoint(jobId: string, owner: string, patch: Checkpoints, leaseMs: number): Promise<void>;
  /** Appends an issue attempt before IoT is called (fenced like checkpoint). */
  recordIssueAttempt(
    jobId: string,
    owner: string,
    attempt: IssueAttempt,
    leaseMs: number,
  ): Promise<void>;
  /** Gives the lease back after a transient failure, keeping the error for operators. */
  release(jobId: string, owner: string, lastError: JobError): Promise<void>;
  succeed(job: Job, owner: string, result: JobResult, device: DeviceOutcome): Promise<void>;
  /**
   * Fails the job and frees the device; `owner` fences it when given, else it fails only a job
   * no worker holds.
   */
  fail(job: Job, error: JobError, owner?: string): Promise<void>;
  /** Deletes a queued job that was never enqueued and frees its device (enqueue compensation). */
  discard(job: Job): Promise<void>;
  /** Puts a failed job back to queued (DLQ replay); false when another job took the device. */
  requeue(jobId: string): Promise<boolean>;
  listJobs(options?: ListJobsOptions): Promise<Job[]>;
  listDevices(): Promise<DeviceRecord[]>;
}

const jobKey = (jobId: string) => ({ pk: `JOB#${jobId}`, sk: 'JOB' });
const deviceKey = (uuid: string) => ({ pk: `DEVICE#${uuid}`, sk: 'DEVICE' });
const statusIndexKey = (status: JobStatus) => `STATUS#${status}`;

/** A store error that is not a domain outcome (throttling, a lost lease). */
export class StoreConflictError extends AppError {}

/** JobStore on one DynamoDB table (pk/sk, GSI `gsi1` by status, TTL `expiresAt`). */
export class DynamoDbJobStore implements JobStore {
  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly tableName: string,
    private readonly options: { ttlDays: number; now?: () => Date } = { ttlDays: 30 },
  ) {}

  private now(): Date {
    return this.options.now?.() ?? new Date();
  }

  private expiresAt(now: Date): number {
    return Math.floor(now.getTime() / 1000) + this.options.ttlDays * 86_400;
  }

  /** The job a `createJob` would record now, and the two transaction items that record it. */
  private newJobItems(input: CreateJobInput) {
    const now = this.now().toISOString();
    const job: Job = {
      jobId: randomUUID(),
      action: input.action,
      uuid: input.uuid,
      status: 'queued',
      attempts: 0,
      createdAt: now,
      updatedAt: now,
      request: input.request,
      checkpoints: {},
      requestedBy: input.requestedBy,
    };
    const blockIfProvisioned = input.action === 'provision' && !input.request.rotate;
    const items = [
      {
        Put: {
          TableName: this.tableName,
          Item: {
            ...jobKey(job.jobId),
            type: 'job',
            gsi1pk: statusIndexKey('queued'),
            gsi1sk: `${now}#${job.jobId}`,
            ...job,
          },
          ConditionExpression: 'attribute_not_exists(pk)',
        },
      },
      {
        Update: {
          TableName: this.tableName,
          Key: deviceKey(input.uuid),
          UpdateExpression:
            'SET #type = :device, #uuid = :uuid, activeJobId = :job, updatedAt = :now, #state = if_not_exists(#state, :unprovisioned)',
          ConditionExpression: blockIfProvisioned
            ? 'attribute_not_exists(activeJobId) AND (attribute_not_exists(#state) OR #state <> :provisioned)'
            : 'attribute_not_exists(activeJobId)',
          ExpressionAttributeNames: { '#type': 'type', '#uuid': 'uuid', '#state': 'state' },
          ExpressionAttributeValues: {
            ':device': 'device',
            ':uuid': input.uuid,
            ':job': job.jobId,
            ':now': now,
            ':unprovisioned': 'unprovisioned',
            ...(blockIfProvisioned ? { ':provisioned': 'provisioned' } : {}),
          },
        },
      },
    ];
    return { job, items, blockIfProvisioned };
  }

  async createJob(input: CreateJobInput): Promise<CreateJobOutcome> {
    for (let attempt = 0; attempt < 8; attempt++) {
      const { job, items, blockIfProvisioned } = this.newJobItems(input);
      try {
        // The token makes the SDK's own retry of a transaction whose answer was lost a no-op.
        await this.doc.send(
          new TransactWriteCommand({ TransactItems: items, ClientRequestToken: job.jobId }),
        );
        return { kind: 'created', job };
      } catch (error: unknown) {
        if (!(error instanceof TransactionCanceledException)) throw error;
        const outcome = await this.explainRefusal(input, blockIfProvisioned);
        if (outcome) return outcome;
        // The blocking job ended between our write and our read: try again.
        await sleep(10 + Math.random() * 40 * (attempt + 1));
      }
    }
    throw new StoreConflictError('the device is changing too fast; try again', 'store_conflict');
  }

  /**
   * Bulk `createJob`: one transaction per 25 devices (50 items, under DynamoDB's 100); a chunk
   * the table refuses (a device got a job meanwhile) falls back to one transaction per device.
   */
  async createJobs(inputs: readonly CreateJobInput[]): Promise<CreateJobOutcome[]> {
    const outcomes: CreateJobOutcome[] = [];
    for (let i = 0; i < inputs.length; i += 25) {
      const chunk = inputs.slice(i, i + 25);
      const prepared = chunk.map((input) => this.newJobItems(input));
      try {
        await this.doc.send(
          new TransactWriteCommand({
            TransactItems: prepared.flatMap((p) => p.items),
            ClientRequestToken: randomUUID(),
          }),
        );
        outcomes.push(...prepared.map((p) => ({ kind: 'created' as const, job: p.job })));
      } catch (error: unknown) {
        if (!(error instanceof TransactionCanceledException)) throw error;
        for (const input of chunk) outcomes.push(await this.createJob(input));
      }
    }
    return outcomes;
  }

  private async explainRefusal(
    input: CreateJobInput,
    blockIfProvisioned: boolean,
  ): Promise<CreateJobOutcome | undefined> {
    const device = await this.getDevice(input.uuid);
    if (!device) return undefined;
    if (device.activeJobId) {
      const active = await this.getJob(device.activeJobId);
      if (!active) return undefined;
      if (active.action !== input.action) {
        throw new JobConflictError(
          `a ${active.action} job is already active for this device`,
          active.jobId,
        );
      }
      return { kind: 'active', job: active };
    }
    if (blockIfProvisioned && device.state === 'provisioned') {
      const job = device.provisionJobId ? await this.getJob(device.provisionJobId) : undefined;
      return { kind: 'provisioned', job, device };
    }
    return undefined;
  }

  async getJob(jobId: string): Promise<Job | undefined> {
    const out = await this.doc.send(
      new GetCommand({ TableName: this.tableName, Key: jobKey(jobId), ConsistentRead: true }),
    );
    return out.Item ? toJob(out.Item) : undefined;
  }

  async getDevice(uuid: string): Promise<DeviceRecord | undefined> {
    const out = await this.doc.send(
      new GetCommand({ TableName: this.tableName, Key: deviceKey(uuid), ConsistentRead: true }),
    );
    return out.Item ? toDevice(out.Item) : undefined;
  }

  async getDevices(uuids: readonly string[]): Promise<DeviceRecord[]> {
    const devices: DeviceRecord[] = [];
    for (let i = 0; i < uuids.length; i += 100) {
      let keys: Record<string, unknown>[] | undefined = uuids.slice(i, i + 100).map(deviceKey);
      while (keys && keys.length > 0) {
        const out: BatchGetCommandOutput = await this.doc.send(
          new BatchGetCommand({
            RequestItems: { [this.tableName]: { Keys: keys, ConsistentRead: true } },
          }),
        );
        devices.push(...(out.Responses?.[this.tableName] ?? []).map(toDevice));
        keys = out.UnprocessedKeys?.[this.tableName]?.Keys;
      }
    }
    return devices;
  }

  async acquire(jobId: string, owner: string, leaseMs: number): Promise<Job | undefined> {
    const now = this.now();
    try {
      const out = await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: jobKey(jobId),
          UpdateExpression:
            'SET #status = :running, gsi1pk = :runningKey, attempts = attempts + :one, leaseOwner = :owner, leaseUntil = :until, updatedAt = :now',
          ConditionExpression:
            'attribute_exists(pk) AND #status IN (:queued, :running) AND (attribute_not_exists(leaseUntil) OR leaseUntil < :nowMs OR leaseOwner = :owner)',
          ExpressionAttributeNames: { '#status': 'status' },
          ExpressionAttributeValues: {
            ':running': 'running',
            ':queued': 'queued',
            ':runningKey': statusIndexKey('running'),
            ':one': 1,
            ':owner': owner,
            ':until': now.getTime() + leaseMs,
            ':nowMs': now.getTime(),
            ':now': now.toISOString(),
          },
          ReturnValues: 'ALL_NEW',
        }),
      );
      return out.Attributes ? toJob(out.Attributes) : undefined;
    } catch (error: unknown) {
      if (!isConditionalFailure(error)) throw error;
      const raw = await this.doc.send(
        new GetCommand({ TableName: this.tableName, Key: jobKey(jobId), ConsistentRead: true }),
      );
      if (!raw.Item) return undefined;
      const job = toJob(raw.Item);
      if (job.status === 'succeeded' || job.status === 'failed') return job;
      const until = Number(raw.Item.leaseUntil ?? 0);
      throw new LeaseHeldError(Math.max(until - now.getTime(), 100));
    }
  }

  async checkpoint(jobId: string, owner: string, patch: Checkpoints, leaseMs: number) {
    const entries = Object.entries(patch).filter(([, v]) => v !== undefined);
    if (entries.length === 0) return;
    const names: Record<string, string> = { '#cp': 'checkpoints' };
    const values: Record<string, unknown> = {};
    const sets = entries.map(([key, value], i) => {
      names[`#k${i}`] = key;
      values[`:v${i}`] = value;
      return `#cp.#k${i} = :v${i}`;
    });
    await this.fencedUpdate(jobId, owner, leaseMs, sets.join(', '), names, values);
  }

  async recordIssueAttempt(jobId: string, owner: string, attempt: IssueAttempt, leaseMs: number) {
    await this.fencedUpdate(
      jobId,
      owner,
      leaseMs,
      '#cp.issueAttempts = list_append(if_not_exists(#cp.issueAttempts, :empty), :attempt)',
      { '#cp': 'checkpoints' },
      { ':empty': [], ':attempt': [attempt] },
    );
  }

  private async fencedUpdate(
    jobId: string,
    owner: string,
    leaseMs: number,
    sets: string,
    names: Record<string, string>,
    values: Record<string, unknown>,
  ): Promise<void> {
    const now = this.now();
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: jobKey(jobId),
          UpdateExpression: `SET ${sets}, updatedAt = :now, leaseUntil = :until`,
          ConditionExpression: 'leaseOwner = :owner AND #status = :running',
          ExpressionAttributeNames: { ...names, '#status': 'status' },
          ExpressionAttributeValues: {
            ...values,
            ':now': now.toISOString(),
            ':until': now.getTime() + leaseMs,
            ':owner': owner,
            ':running': 'running',
          },
        }),
      );
    } catch (error: unknown) {
      if (isConditionalFailure(error)) {
        throw new StoreConflictError('the job lease was lost to another worker', 'lease_lost', {
          cause: error,
        });
      }
      throw error;
    }
  }

  async release(jobId: string, owner: string, lastError: JobError): Promise<void> {
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: jobKey(jobId),
          UpdateExpression:
            'SET lastError = :error, updatedAt = :now REMOVE leaseOwner, leaseUntil',
          ConditionExpression: 'leaseOwner = :owner',
          ExpressionAttributeValues: {
            ':error': lastError,
            ':now': this.now().toISOString(),
            ':owner': owner,
          },
        }),
      );
    } catch (error: unknown) {
      if (!isConditionalFailure(error)) throw error;
    }
  }

  async succeed(job: Job, owner: string, result: JobResult, device: DeviceOutcome): Promise<void> {
    const now = this.now();
    const provisioned = job.action === 'provision';
    const deviceSets = provisioned
      ? '#state = :state, thingName = :thing, certificateId = :certId, certificateArn = :certArn, provisionJobId = :job, lastJobId = :job, updatedAt = :now' +
        (device.balenaService ? ', balenaService = :service' : '')
      : '#state = :state, lastJobId = :job, updatedAt = :now';
    const deviceRemoves = provisioned
      ? `activeJobId${device.balenaService ? '' : ', balenaService'}`
      : 'activeJobId, thingName, certificateId, certificateArn, provisionJobId, balenaService';
    await this.doc.send(
      new TransactWriteCommand({
        TransactItems: [
          this.finishedJobUpdate(job, now, 'succeeded', 'result', result, owner),
          {
            Update: {
              TableName: this.tableName,
              Key: deviceKey(job.uuid),
              UpdateExpression: `SET ${deviceSets} REMOVE ${deviceRemoves}`,
              ConditionExpression: 'attribute_not_exists(activeJobId) OR activeJobId = :job',
              ExpressionAttributeNames: { '#state': 'state' },
              ExpressionAttributeValues: {
                ':state': provisioned ? 'provisioned' : 'deprovisioned',
                ':job': job.jobId,
                ':now': now.toISOString(),
                ...(provisioned
                  ? {
                      ':thing': device.thingName ?? job.uuid,
                      ':certId': device.certificateId ?? null,
                      ':certArn': device.certificateArn ?? null,
                      ...(device.balenaService ? { ':service': device.balenaService } : {}),
                    }
                  : {}),
              },
            },
          },
        ],
      }),
    );
  }

  /**
   * The job half of a finishing transaction: the terminal status, its result or error, the TTL.
   * Fenced by the lease when `owner` is given, else only by the job not being finished yet.
   */
  private finishedJobUpdate(
    job: Job,
    now: Date,
    status: 'succeeded' | 'failed',
    field: 'result' | 'error',
    value: JobResult | JobError,
    owner: string | undefined,
  ) {
    return {
      Update: {
        TableName: this.tableName,
        Key: jobKey(job.jobId),
        UpdateExpression: `SET #status = :status, gsi1pk = :key, #field = :value, updatedAt = :now, expiresAt = :ttl REMOVE leaseOwner, leaseUntil${status === 'succeeded' ? ', lastError' : ''}`,
        ConditionExpression: owner
          ? 'leaseOwner = :owner AND #status = :running'
          : '#status IN (:queued, :running) AND (attribute_not_exists(leaseUntil) OR leaseUntil < :nowMs)',
        ExpressionAttributeNames: { '#status': 'status', '#field': field },
        ExpressionAttributeValues: {
          ':status': status,
          ':key': statusIndexKey(status),
          ':value': value,
          ':now': now.toISOString(),
          ':ttl': this.expiresAt(now),
          ':running': 'running',
          ...(owner ? { ':owner': owner } : { ':queued': 'queued', ':nowMs': now.getTime() }),
        },
      },
    };
  }

  async fail(job: Job, error: JobError, owner?: string): Promise<void> {
    const now = this.now();
    const firstProvision = job.action === 'provision' && !job.request.rotate;
    await this.doc.send(
      new TransactWriteCommand({
        TransactItems: [
          this.finishedJobUpdate(job, now, 'failed', 'error', error, owner),
          {
            Update: {
              TableName: this.tableName,
              Key: deviceKey(job.uuid),
              UpdateExpression: firstProvision
                ? 'SET #state = :failedState, lastJobId = :job, updatedAt = :now REMOVE activeJobId'
                : 'SET lastJobId = :job, updatedAt = :now REMOVE activeJobId',
              ConditionExpression: 'attribute_not_exists(activeJobId) OR activeJobId = :job',
              ExpressionAttributeValues: {
                ':job': job.jobId,
                ':now': now.toISOString(),
                ...(firstProvision ? { ':failedState': 'failed' } : {}),
              },
              ...(firstProvision ? { ExpressionAttributeNames: { '#state': 'state' } } : {}),
            },
          },
        ],
      }),
    );
  }

  async discard(job: Job): Promise<void> {
    await this.doc.send(
      new TransactWriteCommand({
        TransactItems: [
          {
            Delete: {
              TableName: this.tableName,
              Key: jobKey(job.jobId),
              ConditionExpression: '#status = :queued',
              ExpressionAttributeNames: { '#status': 'status' },
              ExpressionAttributeValues: { ':queued': 'queued' },
            },
          },
          {
            Update: {
              TableName: this.tableName,
              Key: deviceKey(job.uuid),
              UpdateExpression: 'REMOVE activeJobId',
              ConditionExpression: 'activeJobId = :job',
              ExpressionAttributeValues: { ':job': job.jobId },
            },
          },
        ],
      }),
    );
  }

  async requeue(jobId: string): Promise<boolean> {
    const job = await this.getJob(jobId);
    if (!job) return false;
    if (job.status === 'queued' || job.status === 'running') return true;
    if (job.status === 'succeeded') return false;
    const now = this.now().toISOString();
    try {
      await this.doc.send(
        new TransactWriteCommand({
          TransactItems: [
            {
              Update: {
                TableName: this.tableName,
                Key: jobKey(jobId),
                UpdateExpression:
                  'SET #status = :queued, gsi1pk = :key, updatedAt = :now, lastError = #error REMOVE #error, expiresAt, leaseOwner, leaseUntil',
                ConditionExpression: '#status = :failed',
                ExpressionAttributeNames: { '#status': 'status', '#error': 'error' },
                ExpressionAttributeValues: {
                  ':queued': 'queued',
                  ':failed': 'failed',
                  ':key': statusIndexKey('queued'),
                  ':now': now,
                },
              },
            },
            {
              Update: {
                TableName: this.tableName,
                Key: deviceKey(job.uuid),
                UpdateExpression: 'SET activeJobId = :job, updatedAt = :now',
                ConditionExpression:
                  '(attribute_not_exists(activeJobId) OR activeJobId = :job) AND lastJobId = :job',
                ExpressionAttributeValues: { ':job': jobId, ':now': now },
              },
            },
          ],
        }),
      );
      return true;
    } catch (error: unknown) {
      if (error instanceof TransactionCanceledException) return false;
      throw error;
    }
  }

  async listJobs(options: ListJobsOptions = {}): Promise<Job[]> {
    const limit = options.limit ?? 1000;
    if (options.status) {
      const items = await this.queryAll(statusIndexKey(options.status), limit);
      return items.map(toJob);
    }
    const items = await this.scanType('job', limit);
    return items.map(toJob).sort((a, b) => b.createdAt.localeCompare(a.createdAt));
  }

  async listDevices(): Promise<DeviceRecord[]> {
    return (await this.scanType('device', Number.POSITIVE_INFINITY)).map(toDevice);
  }

  private async queryAll(pk: string, limit: number): Promise<Record<string, unknown>[]> {
    const items: Record<string, unknown>[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const out = await this.doc.send(
        new QueryCommand({
          TableName: this.tableName,
          IndexName: 'gsi1',
          KeyConditionExpression: 'gsi1pk = :pk',
          ExpressionAttributeValues: { ':pk': pk },
          ScanIndexForward: false,
          ExclusiveStartKey: start,
        }),
      );
      items.push(...(out.Items ?? []));
      start = out.LastEvaluatedKey;
    } while (start && items.length < limit);
    return items.slice(0, limit);
  }

  private async scanType(type: string, limit: number): Promise<Record<string, unknown>[]> {
    const items: Record<string, unknown>[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const out = await this.doc.send(
        new ScanCommand({
          TableName: this.tableName,
          FilterExpression: '#type = :type',
          ExpressionAttributeNames: { '#type': 'type' },
          ExpressionAttributeValues: { ':type': type },
          ExclusiveStartKey: start,
        }),
      );
      items.push(...(out.Items ?? []));
      start = out.LastEvaluatedKey;
    } while (start && items.length < limit);
    return items.slice(0, limit);
  }
}

function isConditionalFailure(error: unknown): boolean {
  return error instanceof ConditionalCheckFailedException;
}

function toJob(item: Record<string, unknown>): Job {
  const {
    pk: _pk,
    sk: _sk,
    type: _type,
    gsi1pk: _g1,
    gsi1sk: _g2,
    leaseOwner: _lo,
    leaseUntil: _lu,
    expiresAt: _exp,
    ...job
  } = item;
  return { checkpoints: {}, ...job } as unknown as Job;
}

function toDevice(item: Record<string, unknown>): DeviceRecord {
  const { pk: _pk, sk: _sk, type: _type, ...device } = item;
  return device as unknown as DeviceRecord;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
