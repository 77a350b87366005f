import { X509Certificate } from 'node:crypto';
import { ListPrincipalThingsCommand, ListTargetsForPolicyCommand } from '@aws-sdk/client-iot';
import type { BalenaSDK } from 'balena-sdk';
import type { RequestOutcome } from '../api/service';
import {
  type BalenaDevice,
  classifyBalenaError,
  type DeviceDirectory,
  type VariableScope,
} from '../shared/balena-directory';
import type { DeviceRecord, Job } from '../shared/domain';
import { certificateIdFromArn } from '../shared/iot-registry';
import { CERT_VARIABLE } from '../worker/steps';
import { chunk, mapLimit, withRetry } from './concurrency';
import { errorMessage } from './enroll';
import { type CliIo, printJson, printLine } from './io';
import { formatTable } from './table';
import type { CliContext } from './target';
import { describeFailures, waitForJobs, waitJson } from './wait';

export type FindingKind =
  | 'thing_missing'
  | 'certificate_inactive'
  | 'multiple_certificates'
  | 'variable_mismatch'
  | 'device_gone'
  | 'orphan_certificate';

export interface Finding {
  readonly kind: FindingKind;
  /** The device; for an orphan certificate, the device whose record still names it, if any. */
  readonly uuid: string | null;
  readonly detail: string;
  readonly certificateArn?: string;
}

export interface Fix {
  readonly action: 'provision' | 'deprovision' | 'retire_certificate';
  readonly uuid: string | null;
  readonly outcome: 'enqueued' | 'active' | 'retired' | 'skipped' | 'failed';
  readonly jobId?: string;
  readonly certificateArn?: string;
  readonly detail?: string;
}

export interface ReconcileOptions {
  readonly fleet?: string;
  readonly fix?: boolean;
  readonly wait?: boolean;
  readonly timeout: number;
  readonly concurrency: number;
  readonly json?: boolean;
}

/** Drift a rotation (fresh credentials, every other certificate of the thing retired) repairs. */
const ROTATE_KINDS: ReadonlySet<FindingKind> = new Set([
  'thing_missing',
  'certificate_inactive',
  'multiple_certificates',
  'variable_mismatch',
]);

/**
 * `reconcile`: compares balena, the device table and IoT Core for the devices this service
 * manages (those with a device record) and reports drift. `--fix` enqueues provision (rotate)
 * or deprovision jobs, and retires certificates that sit on the service's policy attached to
 * no thing; it never touches things or certificates outside that set.
 */
export async function reconcile(ctx: CliContext, io: CliIo, options: ReconcileOptions) {
  const policyName = ctx.policyName();
  const directory = await ctx.balena();
  // IoT first, the table after: a certificate a job attaches meanwhile is then named by that
  // job's checkpoints (or, once it succeeded, attached to its thing) when the table is read.
  const unattached = await unattachedPolicyCertificates(ctx, policyName, options.concurrency);
  const [records, queued, running] = await Promise.all([
    ctx.store.listDevices(),
    ctx.store.listJobs({ status: 'queued', limit: Number.POSITIVE_INFINITY }),
    ctx.store.listJobs({ status: 'running', limit: Number.POSITIVE_INFINITY }),
  ]);
  const inFlight = new Set(
    [...queued, ...running].flatMap((j: Job) =>
      j.checkpoints.certificateArn ? [j.checkpoints.certificateArn] : [],
    ),
  );
  const byUuid = new Map(records.map((r) => [r.uuid, r]));

  // Which recorded devices balena still has, in bulk; a device deleted from balena is no longer
  // listed in its fleet, so with --fleet the records outside it are checked for that too.
  const existing = await lookupDevices(
    await ctx.balenaSdk(),
    records.map((r) => r.uuid),
  );
  let scope: DeviceRecord[] = records;
  if (options.fleet) {
    const fleet = new Set((await directory.listFleetDevices(options.fleet)).map((d) => d.uuid));
    scope = records.filter((r) => fleet.has(r.uuid) || !existing.has(r.uuid));
  }

  const busy: string[] = [];
  const perDevice = await mapLimit(scope, options.concurrency, async (record) => {
    if (record.activeJobId) {
      busy.push(record.uuid);
      return [];
    }
    return inspectDevice(ctx, directory, record, existing.get(record.uuid));
  });
  const findings: Finding[] = perDevice.flat();
  const recordedOwner = new Map(records.map((r) => [r.certificateArn, r.uuid]));
  for (const arn of unattached) {
    if (inFlight.has(arn)) continue;
    findings.push({
      kind: 'orphan_certificate',
      uuid: recordedOwner.get(arn) ?? null,
      certificateArn: arn,
      detail: `certificate ${certificateIdFromArn(arn)} is on policy ${policyName} but attached to no thing`,
    });
  }

  const fixes: Fix[] = options.fix ? await fixDrift(ctx, findings, byUuid, policyName) : [];
  const follow = fixes.filter((f) => f.outcome === 'enqueued' || f.outcome === 'active');
  const waited =
    options.wait && follow.length > 0
      ? await waitForJobs(
          ctx,
          io,
          follow.map((f) => ({ jobId: f.jobId as string, uuid: f.uuid as string })),
          { label: 'fix', timeoutMs: options.timeout * 1000 },
        )
      : undefined;

  if (options.json) {
    printJson(io, {
      findings,
      fixed: fixes,
      busy,
      ...(waited ? { wait: waitJson(waited) } : {}),
    });
  } else {
    printReport(io, findings, fixes, busy);
    if (waited) describeFailures(io, waited);
  }
  const fixFailed = fixes.some((f) => f.outcome === 'failed');
  const waitFailed = waited ? waited.failed.length + waited.pending.length > 0 : false;
  const unrepaired = findings.length > 0 && !options.fix;
  return unrepaired || fixFailed || waitFailed ? 1 : 0;
}

/** The devices balena has among `uuids` (those the operator's key can see), 50 per request. */
async function lookupDevices(
  sdk: BalenaSDK,
  uuids: readonly string[],
): Promise<Map<string, BalenaDevice>> {
  const found = new Map<string, BalenaDevice>();
  for (const group of chunk(uuids, 50)) {
    const rows = await withRetry(async () => {
      try {
        return await sdk.pine.get({
          resource: 'device',
          options: { $select: ['id', 'uuid'], $filter: { uuid: { $in: group } } },
        });
      } catch (error: unknown) {
        throw classifyBalenaError(error, 'device lookup');
      }
    });
    for (const row of rows) found.set(row.uuid, { id: row.id, uuid: row.uuid });
  }
  return found;
}

/** Certificates on the policy that no thing has, read with ListTargetsForPolicy + ListPrincipalThings. */
async function unattachedPolicyCertificates(
  ctx: CliContext,
  policyName: string,
  concurrency: number,
): Promise<string[]> {
  const targets: string[] = [];
  let marker: string | undefined;
  do {
    const page = await ctx.aws.iot.send(
      new ListTargetsForPolicyCommand({ policyName, marker, pageSize: 250 }),
    );
    targets.push(...(page.targets ?? []));
    marker = page.nextMarker;
  } while (marker);
  const certificates = targets.filter((t) => t.includes(':cert/'));
  const things = await mapLimit(certificates, concurrency, (arn) => principalThings(ctx, arn));
  return certificates.filter((_, i) => things[i]?.length === 0);
}

async function principalThings(ctx: CliContext, principal: string): Promise<string[]> {
  const things: string[] = [];
  let nextToken: string | undefined;
  do {
    const page = await ctx.aws.iot.send(new ListPrincipalThingsCommand({ principal, nextToken }));
    things.push(...(page.things ?? []));
    nextToken = page.nextToken;
  } while (nextToken);
  return things;
}

async function inspectDevice(
  ctx: CliContext,
  directory: DeviceDirectory,
  record: DeviceRecord,
  device: BalenaDevice | undefined,
): Promise<Finding[]> {
  const { uuid } = record;
  const principals = await ctx.iot.listThingPrincipals(uuid);
  if (!device) {
    if (principals === undefined && record.state !== 'provisioned') return [];
    return [
      {
        kind: 'device_gone',
        uuid,
        detail:
          principals === undefined
            ? 'balena no longer has this device, which the table still marks provisioned'
            : `balena no longer has this device, but its thing remains (${principals.length} certificate(s))`,
      },
    ];
  }
  if (record.state !== 'provisioned') return [];
  if (principals === undefined) {
    return [{ kind: 'thing_missing', uuid, detail: 'marked provisioned, but IoT has no thing' }];
  }
  const findings: Finding[] = [];
  const certificates = await Promise.all(
    principals.map(async (arn) => {
      const described = await ctx.iot.describeCertificate(certificateIdFromArn(arn));
      return { arn, status: described?.status ?? 'MISSING', pem: described?.certificatePem ?? '' };
    }),
  );
  if (certificates.length > 1) {
    findings.push({
      kind: 'multiple_certificates',
      uuid,
      detail: `the thing has ${certificates.length} certificates: ${certificates
        .map((c) => `${certificateIdFromArn(c.arn).slice(0, 12)} (${c.status})`)
        .join(', ')}`,
    });
  }
  const active = certificates.filter((c) => c.status === 'ACTIVE');
  if (active.length === 0) {
    findings.push({
      kind: 'certificate_inactive',
      uuid,
      detail:
        certificates.length === 0
          ? 'the thing has no certificate'
          : `no ACTIVE certificate (${certificates.map((c) => c.status).join(', ')})`,
    });
  }
  const variable = await readCertificateVariable(directory, record, device);
  if (variable.problem) {
    findings.push({ kind: 'variable_mismatch', uuid, detail: variable.problem });
  } else if (!certificates.some((c) => sameCertificate(c.pem, variable.pem as string))) {
    findings.push({
      kind: 'variable_mismatch',
      uuid,
      detail: `${CERT_VARIABLE} holds a certificate that is not attached to the thing`,
    });
  }
  return findings;
}

async function readCertificateVariable(
  directory: DeviceDirectory,
  record: DeviceRecord,
  device: BalenaDevice,
): Promise<{ pem?: string; problem?: string }> {
  let scope: VariableScope = { deviceId: device.id };
  if (record.balenaService) {
    try {
      const serviceInstallId = await directory.resolveServiceInstall(
        record.uuid,
        record.balenaService,
      );
      scope = { deviceId: device.id, serviceInstallId };
    } catch (error: unknown) {
      return { problem: `cannot read the ${record.balenaService} service: ${errorMessage(error)}` };
    }
  }
  const value = await directory.getVariable(scope, CERT_VARIABLE);
  const where = record.balenaService ? ` on service ${record.balenaService}` : '';
  if (!value) return { problem: `${CERT_VARIABLE} is not set${where}` };
  return { pem: Buffer.from(value, 'base64').toString('utf8') };
}

function sameCertificate(a: string, b: string): boolean {
  try {
    return new X509Certificate(a).fingerprint256 === new X509Certificate(b).fingerprint256;
  } catch {
    return false;
  }
}

async function fixDrift(
  ctx: CliContext,
  findings: readonly Finding[],
  records: ReadonlyMap<string, DeviceRecord>,
  policyName: string,
): Promise<Fix[]> {
  const fixes: Fix[] = [];
  for (const finding of findings.filter((f) => f.kind === 'orphan_certificate')) {
    const arn = finding.certificateArn as string;
    try {
      // Checked again right before: a job may have attached it to its thing since the scan.
      if ((await principalThings(ctx, arn)).length > 0) {
        fixes.push({
          action: 'retire_certificate',
          uuid: finding.uuid,
          certificateArn: arn,
          outcome: 'skipped',
          detail: 'attached to a thing since the scan',
        });
        continue;
      }
      await ctx.iot.retireCertificate(arn, policyName);
      fixes.push({
        action: 'retire_certificate',
        uuid: finding.uuid,
        certificateArn: arn,
        outcome: 'retired',
        detail: 'detached from the policy, deactivated and deleted',
      });
    } catch (error: unknown) {
      fixes.push({
        action: 'retire_certificate',
        uuid: finding.uuid,
        certificateArn: arn,
        outcome: 'failed',
        detail: errorMessage(error),
      });
    }
  }
  const rotate = new Set(
    findings.filter((f) => ROTATE_KINDS.has(f.kind)).map((f) => f.uuid as string),
  );
  const gone = new Set(
    findings.filter((f) => f.kind === 'device_gone').map((f) => f.uuid as string),
  );
  for (const uuid of rotate) {
    const service = records.get(uuid)?.balenaService;
    fixes.push(
      await enqueueFix('provision', uuid, () =>
        ctx.service.request(
          'provision',
          uuid,
          { rotate: true, ...(service ? { balenaService: service } : {}) },
          'cli',
        ),
      ),
    );
  }
  for (const uuid of gone) {
    fixes.push(
      await enqueueFix('deprovision', uuid, () => ctx.service.requestDeprovision(uuid, 'cli')),
    );
  }
  return fixes;
}

async function enqueueFix(
  action: 'provision' | 'deprovision',
  uuid: string,
  request: () => Promise<RequestOutcome>,
): Promise<Fix> {
  try {
    const outcome = await request();
    return {
      action,
      uuid,
      outcome: outcome.kind === 'created' ? 'enqueued' : 'active',
      jobId: outcome.job?.jobId,
      detail: outcome.kind === 'created' ? undefined : 'a job was already active for the device',
    };
  } catch (error: unknown) {
    return { action, uuid, outcome: 'failed', detail: errorMessage(error) };
  }
}

function printReport(
  io: CliIo,
  findings: readonly Finding[],
  fixes: readonly Fix[],
  busy: readonly string[],
) {
  if (findings.length === 0) {
    printLine(io, 'no drift found');
  } else {
    printLine(
      io,
      formatTable(
        ['finding', 'uuid', 'detail'],
        findings.map((f) => [f.kind, f.uuid ?? '-', f.detail]),
      ),
    );
  }
  if (busy.length > 0) {
    printLine(io, `${busy.length} device(s) with an active job were not checked`);
  }
  if (fixes.length > 0) {
    printLine(io);
    printLine(
      io,
      formatTable(
        ['fix', 'uuid', 'outcome', 'job', 'detail'],
        fixes.map((f) => [
          f.action,
          f.uuid ?? '-',
          f.outcome,
          f.jobId ?? '-',
          f.detail ?? (f.certificateArn ? certificateIdFromArn(f.certificateArn) : ''),
        ]),
      ),
    );
  }
  const counts = new Map<string, number>();
  for (const f of findings) counts.set(f.kind, (counts.get(f.kind) ?? 0) + 1);
  const kinds = [...counts].map(([k, n]) => `${n} ${k}`).join(', ');
  printLine(
    io,
    `reconcile: ${findings.length} finding(s)${kinds ? ` (${kinds})` : ''}${
      fixes.length > 0
        ? `; ${fixes.filter((f) => f.outcome === 'enqueued' || f.outcome === 'retired').length} fix(es) applied, ${fixes.filter((f) => f.outcome === 'failed').length} failed`
        : ''
    }`,
  );
}
