import { ReceiveMessageCommand, SendMessageCommand } from '@aws-sdk/client-sqs';
import type { Context } from 'aws-lambda';
import { ProvisioningService } from '../../src/api/service';
import { startThrottleProxy, type ThrottleProxy } from '../../src/local/iot-throttle-proxy';
import type { LocalStack } from '../../src/local/stack';
import type { Job } from '../../src/shared/domain';
import { QueueUnavailableError } from '../../src/shared/errors';
import { DynamoDbJobStore } from '../../src/shared/job-store';
import { SqsWorkQueue } from '../../src/shared/queue';
import type { StepName } from '../../src/worker/steps';
import { motoEndpoint } from '../helpers/aws';
import { sqsRecord } from '../helpers/sqs';
import {
  addDevices,
  api,
  CRASH_TIMINGS,
  fromBase64,
  issuedCertificates,
  keyMatchesCertificate,
  provisionAndWait,
  startTestStack,
  thingCertificates,
  waitForJob,
} from '../helpers/stack';

const FLEET = 'faulty/fleet';

/** Crash plan: the worker "dies" (its invocation hangs until the poller abandons it) once per job at the step. */
class CrashPlan {
  readonly plan = new Map<string, StepName>();
  readonly crashed = new Set<string>();

  readonly afterStep = (step: StepName, job: Job): Promise<void> | undefined => {
    const key = `${job.jobId}:${step}`;
    if (this.plan.get(job.uuid) !== step || this.crashed.has(key)) return undefined;
    this.crashed.add(key);
    // Never settles: no later code of this invocation runs, as if the process had died here.
    return new Promise<void>(() => undefined);
  };
}

async function expectProvisioned(stack: LocalStack, uuid: string): Promise<string> {
  const certificates = await thingCertificates(stack, uuid);
  expect(certificates).toHaveLength(1);
  const [certificate] = certificates!;
  expect(certificate!.status).toBe('ACTIVE');
  expect(certificate!.policies).toEqual([stack.policyName]);
  const variables = stack.sim!.deviceEnvVars(uuid);
  expect(fromBase64(variables.AWS_CERT)).toBe(certificate!.pem);
  expect(keyMatchesCertificate(fromBase64(variables.AWS_PRIVATE_KEY), certificate!.pem)).toBe(true);
  return certificate!.id;
}

describe('exactly-once provisioning when the worker dies between steps', () => {
  const crashes = new CrashPlan();
  let stack: LocalStack;
  const since = new Date();

  beforeAll(async () => {
    stack = await startTestStack({
      seed: { fleets: [{ slug: FLEET, services: ['main'] }] },
      workerOverrides: { afterStep: crashes.afterStep },
      ...CRASH_TIMINGS,
      pollerConcurrency: 6,
      maxReceiveCount: 6,
    });
  });
  afterAll(async () => {
    await stack.stop();
  });

  const provisionSteps: StepName[] = [
    'device',
    'thing',
    'issue-recorded',
    'certificate-created',
    'certificate',
    'policy',
    'thing-principal',
    'variables',
  ];

  it('ends with one ACTIVE certificate, matching variables and no leftover, whatever step it died after', async () => {
    const devices = addDevices(stack, FLEET, provisionSteps.length);
    for (const [i, d] of devices.entries()) crashes.plan.set(d.uuid, provisionSteps[i]!);

    const jobs = await Promise.all(
      devices.map((d) => provisionAndWait(stack, d.uuid, d.deviceKey)),
    );

    for (const [i, job] of jobs.entries()) {
      expect({ step: provisionSteps[i], status: job.status }).toEqual({
        step: provisionSteps[i],
        status: 'succeeded',
      });
      expect(Number(job.attempts)).toBeGreaterThanOrEqual(2);
      expect(crashes.crashed.has(`${job.jobId}:${provisionSteps[i]}`)).toBe(true);
      await expectProvisioned(stack, devices[i]!.uuid);
    }
    const certificates = await issuedCertificates(
      stack,
      devices.map((d) => d.uuid),
      since,
    );
    expect(certificates.filter((c) => !c.attached)).toEqual([]);
  });

  const rotationSteps: StepName[] = [...provisionSteps.slice(2), 'retired'];

  it('rotates to a new certificate and retires the old one, whatever step it died after', async () => {
    const devices = addDevices(stack, FLEET, rotationSteps.length);
    await Promise.all(devices.map((d) => provisionAndWait(stack, d.uuid, d.deviceKey)));
    const before = await Promise.all(devices.map((d) => expectProvisioned(stack, d.uuid)));
    for (const [i, d] of devices.entries()) crashes.plan.set(d.uuid, rotationSteps[i]!);

    const jobs = await Promise.all(
      devices.map((d) => provisionAndWait(stack, d.uuid, d.deviceKey, { rotate: true })),
    );

    for (const [i, job] of jobs.entries()) {
      expect({ step: rotationSteps[i], status: job.status }).toEqual({
        step: rotationSteps[i],
        status: 'succeeded',
      });
      expect(crashes.crashed.has(`${job.jobId}:${rotationSteps[i]}`)).toBe(true);
      const after = await expectProvisioned(stack, devices[i]!.uuid);
      expect(after).not.toBe(before[i]);
    }
    const certificates = await issuedCertificates(
      stack,
      devices.map((d) => d.uuid),
      since,
    );
    expect(certificates.filter((c) => !c.attached)).toEqual([]);
    expect(certificates).toHaveLength(devices.length);
  });

  it('removes the thing, every certificate and the variables, whatever step it died after', async () => {
    const steps: StepName[] = ['iot-removed', 'variables-removed'];
    const devices = addDevices(stack, FLEET, steps.length);
    await Promise.all(devices.map((d) => provisionAndWait(stack, d.uuid, d.deviceKey)));
    for (const [i, d] of devices.entries()) crashes.plan.set(d.uuid, steps[i]!);

    const jobs = await Promise.all(
      devices.map(async (d) => {
        const answer = await api(stack, 'DELETE', `/v1/devices/${d.uuid}`, { token: d.deviceKey });
        expect(answer.status).toBe(202);
        return waitForJob(stack, String(answer.json.jobId), d.deviceKey);
      }),
    );

    for (const [i, job] of jobs.entries()) {
      expect(job.status).toBe('succeeded');
      expect(crashes.crashed.has(`${job.jobId}:${steps[i]}`)).toBe(true);
      expect(await thingCertificates(stack, devices[i]!.uuid)).toBeUndefined();
      expect(stack.sim!.deviceEnvVars(devices[i]!.uuid)).toEqual({});
    }
    expect(
      await issuedCertificates(
        stack,
        devices.map((d) => d.uuid),
        since,
      ),
    ).toEqual([]);
  });
});

describe('duplicate deliveries of one message', () => {
  let stack: LocalStack;
  beforeAll(async () => {
    stack = await startTestStack({
      seed: { fleets: [{ slug: FLEET }] },
      startWorker: false,
    });
  });
  afterAll(async () => {
    await stack.stop();
  });

  it('processes the job once when five copies are handled at the same time', async () => {
    const [device] = addDevices(stack, FLEET, 1);
    const posted = await api(stack, 'POST', '/v1/provision', {
      token: device!.deviceKey,
      body: { uuid: device!.uuid },
    });
    const received = await stack.aws.sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: stack.queueUrl,
        MaxNumberOfMessages: 1,
        WaitTimeSeconds: 1,
        MessageSystemAttributeNames: ['All'],
      }),
    );
    const message = received.Messages![0]!;
    const record = sqsRecord(message.MessageId!, message.Body!, message.ReceiptHandle!);
    for (let i = 0; i < 3; i++) {
      await stack.aws.sqs.send(
        new SendMessageCommand({ QueueUrl: stack.queueUrl, MessageBody: message.Body! }),
      );
    }

    await Promise.all(
      Array.from({ length: 5 }, () => stack.workerHandler({ Records: [record] }, {} as Context)),
    );
    await stack.poller.start();
    const job = await waitForJob(stack, String(posted.json.jobId), device!.deviceKey);

    expect(job.status).toBe('succeeded');
    await expectProvisioned(stack, device!.uuid);
    const certificates = await issuedCertificates(stack, [device!.uuid], new Date(0));
    expect(certificates).toHaveLength(1);
  });
});

describe('transient faults from balena and IoT', () => {
  let stack: LocalStack;
  let proxy: ThrottleProxy;
  beforeAll(async () => {
    proxy = await startThrottleProxy({ target: motoEndpoint() });
    stack = await startTestStack({
      seed: { fleets: [{ slug: FLEET }] },
      iotEndpoint: proxy.url,
      maxReceiveCount: 8,
    });
  });
  afterAll(async () => {
    await stack.stop();
    await proxy.close();
  });

  it('succeeds for every job, none twice, through 429s with Retry-After, 5xx bursts and ThrottlingException', async () => {
    const devices = addDevices(stack, FLEET, 6);
    stack.sim!.clearRequests();
    stack.sim!.addFault({
      kind: 'status',
      status: 429,
      retryAfterSeconds: 1,
      count: 4,
      route: '/v7/',
    });
    stack.sim!.addFault({ kind: 'status', status: 503, count: 6, route: '/v7/' });
    proxy.throttleNext('*', 12);

    const jobs = await Promise.all(
      devices.map((d) => provisionAndWait(stack, d.uuid, d.deviceKey)),
    );

    expect(jobs.map((j) => j.status)).toEqual(devices.map(() => 'succeeded'));
    for (const device of devices) await expectProvisioned(stack, device.uuid);
    expect(
      await issuedCertificates(
        stack,
        devices.map((d) => d.uuid),
        new Date(0),
      ),
    ).toHaveLength(devices.length);
    const statuses = stack.sim!.requests.map((r) => r.status);
    expect(statuses.filter((s) => s === 429)).toHaveLength(4);
    expect(statuses.filter((s) => s === 503)).toHaveLength(6);
    expect(Object.values(proxy.throttled).reduce((a, b) => a + b, 0)).toBe(12);
  });
});

describe('an SQS send that fails after the job is recorded', () => {
  it('answers 503 and leaves no job, so the next request gets a fresh one that runs', async () => {
    const stack = await startTestStack({ seed: { fleets: [{ slug: FLEET }] } });
    try {
      const [device] = addDevices(stack, FLEET, 1);
      const store = new DynamoDbJobStore(stack.aws.doc, stack.tableName, { ttlDays: 1 });
      const broken = new ProvisioningService({
        store,
        queue: new SqsWorkQueue(stack.aws.sqs, `${stack.queueUrl}-deleted`),
      });

      await expect(broken.request('provision', device!.uuid, {}, 'test')).rejects.toBeInstanceOf(
        QueueUnavailableError,
      );
      const jobs = await store.listJobs();
      expect(jobs.filter((j) => j.uuid === device!.uuid)).toEqual([]);
      expect((await store.getDevice(device!.uuid))?.activeJobId).toBeUndefined();

      const job = await provisionAndWait(stack, device!.uuid, device!.deviceKey);
      expect(job.status).toBe('succeeded');
    } finally {
      await stack.stop();
    }
  });
});

describe('deprovision racing provision of the same device', () => {
  let stack: LocalStack;
  beforeAll(async () => {
    stack = await startTestStack({ seed: { fleets: [{ slug: FLEET }] } });
  });
  afterAll(async () => {
    await stack.stop();
  });

  it('serializes them: the final state matches the job that finished last and no certificate is left', async () => {
    const [device] = addDevices(stack, FLEET, 1);
    const token = device!.deviceKey;
    const finished: Array<Record<string, unknown>> = [];
    for (let round = 0; round < 3; round++) {
      const answers = await Promise.all([
        api(stack, 'POST', '/v1/provision', { token, body: { uuid: device!.uuid } }),
        api(stack, 'DELETE', `/v1/devices/${device!.uuid}`, { token }),
        api(stack, 'POST', '/v1/provision', { token, body: { uuid: device!.uuid } }),
        api(stack, 'DELETE', `/v1/devices/${device!.uuid}`, { token }),
      ]);
      const accepted = answers.filter((a) => a.status === 202 || a.status === 200);
      const refused = answers.filter((a) => a.status === 409);
      expect(accepted.length + refused.length).toBe(answers.length);
      expect(refused.every((a) => a.json.code === 'job_conflict')).toBe(true);
      const jobIds = [...new Set(accepted.map((a) => String(a.json.jobId)))];
      for (const jobId of jobIds) finished.push(await waitForJob(stack, jobId, token));
    }

    const last = finished
      .sort((a, b) => String(a.updatedAt).localeCompare(String(b.updatedAt)))
      .at(-1)!;
    const certificates = await issuedCertificates(stack, [device!.uuid], new Date(0));
    if (last.action === 'provision') {
      await expectProvisioned(stack, device!.uuid);
      expect(certificates).toHaveLength(1);
    } else {
      expect(await thingCertificates(stack, device!.uuid)).toBeUndefined();
      expect(stack.sim!.deviceEnvVars(device!.uuid)).toEqual({});
      expect(certificates).toEqual([]);
    }
  });
});
