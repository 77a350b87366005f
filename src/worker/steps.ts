import type { BalenaDevice, DeviceDirectory, VariableScope } from '../shared/balena-directory';
import {
  csrKeyFingerprint,
  type DeviceKeyAlgorithm,
  generateDeviceCredentials,
} from '../shared/csr';
import type { Checkpoints, Job, JobResult } from '../shared/domain';
import { PermanentError, PoisonMessageError, TransientError } from '../shared/errors';
import type { IotRegistry } from '../shared/iot-registry';
import type { DeviceOutcome, JobStore } from '../shared/job-store';

export const CERT_VARIABLE = 'AWS_CERT';
export const KEY_VARIABLE = 'AWS_PRIVATE_KEY';
export const ENDPOINT_VARIABLE = 'AWS_DATA_ENDPOINT';
/** Everything provisioning may write, and deprovisioning removes. */
const DELIVERED_VARIABLES = [CERT_VARIABLE, KEY_VARIABLE, ENDPOINT_VARIABLE];

/** The steps, in order; fault tests stop the worker after each (some are checkpoints). */
export type StepName =
  | 'device'
  | 'thing'
  | 'issue-recorded'
  | 'certificate-created'
  | 'certificate'
  | 'policy'
  | 'thing-principal'
  | 'variables'
  | 'retired'
  | 'iot-removed'
  | 'variables-removed';

/** What the step machine needs; handlers build it once per cold start. */
export interface StepDeps {
  readonly store: JobStore;
  readonly iot: IotRegistry;
  readonly directory: DeviceDirectory;
  readonly policyName: string;
  readonly keyAlgorithm: DeviceKeyAlgorithm;
  /** The IoT data endpoint written as AWS_DATA_ENDPOINT, when configured. */
  readonly dataEndpoint?: string;
  /** How long a worker owns a job between checkpoints. */
  readonly leaseMs: number;
  /**
   * Called after each step is durable (and right after a certificate is created, before that is
   * recorded). Fault tests stop the worker here; production leaves it unset.
   */
  readonly afterStep?: (step: StepName, job: Job) => Promise<void> | void;
}

export type RunOutcome = 'succeeded' | 'failed' | 'skipped';

/** The job's mutable checkpoints plus the fenced way to save them. */
class JobRun {
  readonly cp: Checkpoints;

  constructor(
    private readonly deps: StepDeps,
    readonly job: Job,
    private readonly owner: string,
    private readonly deadline?: number,
  ) {
    this.cp = { ...job.checkpoints };
  }

  async save(patch: Checkpoints, step: StepName): Promise<void> {
    await this.deps.store.checkpoint(this.job.jobId, this.owner, patch, this.deps.leaseMs);
    Object.assign(this.cp, patch);
    await this.reached(step);
  }

  async reached(step: StepName): Promise<void> {
    await this.deps.afterStep?.(step, this.job);
    // Never start a step the invocation cannot finish: past its deadline the message is
    // redelivered and another worker resumes from this checkpoint.
    if (this.deadline !== undefined && Date.now() > this.deadline) {
      throw new TransientError('the invocation ran out of time', 'invocation_deadline');
    }
  }

  async recordIssueAttempt(keyFingerprint: string): Promise<void> {
    const attempt = { keyFingerprint, startedAt: new Date().toISOString() };
    await this.deps.store.recordIssueAttempt(
      this.job.jobId,
      this.owner,
      attempt,
      this.deps.leaseMs,
    );
    this.cp.issueAttempts = [...(this.cp.issueAttempts ?? []), attempt];
    await this.reached('issue-recorded');
  }
}

/**
 * Runs one job to its end state, resuming from its checkpoints. Permanent errors fail the job;
 * transient errors propagate so the message is retried (the lease is released by the caller).
 */
export async function runJob(
  deps: StepDeps,
  jobId: string,
  owner: string,
  deadline?: number,
): Promise<RunOutcome> {
  const job = await deps.store.acquire(jobId, owner, deps.leaseMs);
  if (!job) throw new PoisonMessageError(`job ${jobId} does not exist`, 'unknown_job');
  if (job.status === 'succeeded' || job.status === 'failed') return 'skipped';
  const run = new JobRun(deps, job, owner, deadline);
  try {
    const { result, device } =
      job.action === 'provision' ? await provision(deps, run) : await deprovision(deps, run);
    await deps.store.succeed(job, owner, result, device);
    return 'succeeded';
  } catch (error: unknown) {
    if (!(error instanceof PermanentError)) throw error;
    await deps.store.fail(job, { code: error.code, message: error.message }, owner);
    return 'failed';
  }
}

async function provision(
  deps: StepDeps,
  run: JobRun,
): Promise<{ result: JobResult; device: DeviceOutcome }> {
  const { job, cp } = run;
  const { uuid } = job;
  const service = job.request.balenaService;
  const csrMode = job.request.csr !== undefined;

  // Lookups and idempotent calls are not checkpointed one by one (a redelivery simply repeats
  // them); only what must not be repeated blindly is: issuing a certificate, and delivering it.
  if (cp.balenaDeviceId === undefined || !cp.thingReady) {
    const device = await deps.directory.findDevice(uuid);
    if (!device) throw deviceNotFound(uuid);
    const serviceInstallId = service
      ? await deps.directory.resolveServiceInstall(uuid, service)
      : undefined;
    await run.reached('device');
    const created = await deps.iot.ensureThing(uuid);
    await run.save(
      { balenaDeviceId: device.id, serviceInstallId, thingReady: true, thingCreated: created },
      'thing',
    );
  }
  const scope: VariableScope = {
    deviceId: cp.balenaDeviceId as number,
    serviceInstallId: cp.serviceInstallId,
  };

  // A recorded certificate whose private key died with an earlier worker is useless unless it
  // already reached the device: check the variable itself, then retire it if it did not.
  if (cp.certificateId && cp.deliveredCertificateId !== cp.certificateId && !csrMode) {
    const delivered = await deps.directory.getVariable(scope, CERT_VARIABLE);
    if (cp.certificatePem && delivered === toBase64(cp.certificatePem)) {
      await run.save({ deliveredCertificateId: cp.certificateId }, 'variables');
    } else {
      await deps.iot.retireCertificate(cp.certificateArn as string, deps.policyName);
      await run.save(
        {
          certificateId: null,
          certificateArn: null,
          certificatePem: null,
          keyFingerprint: null,
        },
        'retired',
      );
    }
  }

  let privateKeyPem: string | undefined;
  if (!cp.certificateId) {
    await retireInterruptedAttempts(deps, run);
    const credentials = csrMode
      ? {
          csrPem: job.request.csr as string,
          keyFingerprint: csrKeyFingerprint(job.request.csr as string),
        }
      : await generateDeviceCredentials(uuid, deps.keyAlgorithm);
    await run.recordIssueAttempt(credentials.keyFingerprint);
    const issued = await deps.iot.createCertificateFromCsr(credentials.csrPem);
    await run.reached('certificate-created');
    privateKeyPem = 'privateKeyPem' in credentials ? credentials.privateKeyPem : undefined;
    await run.save(
      {
        certificateId: issued.certificateId,
        certificateArn: issued.certificateArn,
        certificatePem: issued.certificatePem,
        keyFingerprint: credentials.keyFingerprint,
        issueAttempts: [],
      },
      'certificate',
    );
  }
  const certificateArn = cp.certificateArn as string;
  const certificatePem = cp.certificatePem as string;

  if (cp.deliveredCertificateId !== cp.certificateId) {
    // Both attachments are idempotent: after a crash they are simply made again.
    await deps.iot.attachPolicy(deps.policyName, certificateArn);
    await run.reached('policy');
    await deps.iot.attachThingPrincipal(uuid, certificateArn);
    await run.reached('thing-principal');
    const endpoint: Record<string, string> = deps.dataEndpoint
      ? { [ENDPOINT_VARIABLE]: deps.dataEndpoint }
      : {};
    // AWS_CERT is written last: when it names this certificate, everything before it landed
    // too, which is what a resumed job checks (the writes are separate balena calls).
    if (csrMode) {
      await deps.directory.removeVariables(scope, [KEY_VARIABLE]);
      await deps.directory.setVariables(scope, {
        ...endpoint,
        [CERT_VARIABLE]: toBase64(certificatePem),
      });
    } else {
      if (!privateKeyPem) throw new Error('the private key of an undelivered certificate is lost');
      await deps.directory.setVariables(scope, {
        [KEY_VARIABLE]: toBase64(privateKeyPem),
        ...endpoint,
        [CERT_VARIABLE]: toBase64(certificatePem),
      });
    }
    await run.save({ deliveredCertificateId: cp.certificateId }, 'variables');
  }

  // Only now, with working credentials delivered, retire every other certificate of the thing.
  // A thing this job created can hold no other (our own earlier ones were retired above), which
  // saves ListThingPrincipals, the tightest IoT quota (10/s), on every first provision.
  const principals = cp.thingCreated ? [] : ((await deps.iot.listThingPrincipals(uuid)) ?? []);
  const retired = [...(cp.retiredCertificates ?? [])];
  for (const principal of principals) {
    if (principal === certificateArn) continue;
    await deps.iot.retireCertificate(principal, deps.policyName);
    retired.push(principal);
  }
  if (retired.length > (cp.retiredCertificates?.length ?? 0)) {
    await run.save({ retiredCertificates: retired }, 'retired');
  }

  const variables = {
    level: service ? ('service' as const) : ('device' as const),
    ...(service ? { service } : {}),
    names: [
      CERT_VARIABLE,
      ...(csrMode ? [] : [KEY_VARIABLE]),
      ...(deps.dataEndpoint ? [ENDPOINT_VARIABLE] : []),
    ],
  };
  const certificateId = cp.certificateId as string;
  return {
    result: {
      thingName: uuid,
      certificateId,
      certificateArn,
      variables,
      ...(csrMode ? { certificatePem } : {}),
      ...(retired.length > 0 ? { certificatesRetired: retired.length } : {}),
    },
    device: { thingName: uuid, certificateId, certificateArn, balenaService: service },
  };
}

/**
 * Finds, by the public keys recorded before IoT was called, the certificates of attempts that
 * were interrupted before their certificate was recorded, and retires them.
 */
async function retireInterruptedAttempts(deps: StepDeps, run: JobRun): Promise<void> {
  const attempts = run.cp.issueAttempts ?? [];
  if (attempts.length === 0) return;
  const starts = attempts.map((a) => Date.parse(a.startedAt));
  // An attempt's certificate was created while its worker held the lease: that bounds the scan.
  const found = await deps.iot.findCertificatesByKey(
    new Set(attempts.map((a) => a.keyFingerprint)),
    new Date(Math.min(...starts)),
    new Date(Math.max(...starts) + deps.leaseMs),
  );
  for (const certificate of found) {
    await deps.iot.retireCertificate(certificate.certificateArn, deps.policyName);
  }
  await run.save(
    {
      issueAttempts: [],
      retiredCertificates: [
        ...(run.cp.retiredCertificates ?? []),
        ...found.map((c) => c.certificateArn),
      ],
    },
    'retired',
  );
}

async function deprovision(
  deps: StepDeps,
  run: JobRun,
): Promise<{ result: JobResult; device: DeviceOutcome }> {
  const { job, cp } = run;
  const { uuid } = job;
  let retired = cp.retiredCertificates ?? [];

  if (!cp.thingDeleted) {
    const principals = await deps.iot.listThingPrincipals(uuid);
    retired = [...retired];
    for (const principal of principals ?? []) {
      await deps.iot.retireCertificate(principal, deps.policyName);
      retired.push(principal);
    }
    if (principals) await deps.iot.deleteThing(uuid);
    await run.save({ thingDeleted: true, retiredCertificates: retired }, 'iot-removed');
  }

  if (!cp.variablesRemoved) {
    const device: BalenaDevice | undefined = await deps.directory.findDevice(uuid);
    if (device) {
      await deps.directory.removeVariables({ deviceId: device.id }, DELIVERED_VARIABLES);
      const service = job.request.balenaService;
      if (service) {
        const serviceInstallId = await deps.directory
          .resolveServiceInstall(uuid, service)
          .catch((error: unknown) => {
            if (error instanceof PermanentError && error.code === 'service_not_found') return;
            throw error;
          });
        if (serviceInstallId !== undefined) {
          await deps.directory.removeVariables(
            { deviceId: device.id, serviceInstallId },
            DELIVERED_VARIABLES,
          );
        }
      }
    }
    await run.save({ variablesRemoved: true, deviceMissing: !device }, 'variables-removed');
  }

  return {
    result: {
      thingName: uuid,
      certificatesRetired: retired.length,
      ...(cp.deviceMissing
        ? {}
        : {
            variables: {
              level: job.request.balenaService ? 'service' : 'device',
              ...(job.request.balenaService ? { service: job.request.balenaService } : {}),
              names: [CERT_VARIABLE, KEY_VARIABLE],
            },
          }),
    },
    device: {},
  };
}

function deviceNotFound(uuid: string): PermanentError {
  return new PermanentError(`balena has no device with uuid ${uuid}`, 'device_not_found');
}

function toBase64(text: string): string {
  return Buffer.from(text, 'utf8').toString('base64');
}
