import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ListThingPrincipalsCommand } from '@aws-sdk/client-iot';
import { GetQueueAttributesCommand } from '@aws-sdk/client-sqs';
import { runCli } from '../../src/cli/main';
import type { LocalStack } from '../../src/local/stack';
import { stackFile } from '../../src/local/stack-file';
import { makeAwsClients } from '../../src/shared/aws-clients';
import type { Job } from '../../src/shared/domain';
import { DynamoDbJobStore } from '../../src/shared/job-store';
import { DEFAULT_IOT_RATES } from '../../src/shared/rate-limiter';
import {
  type AwsRequestCounts,
  type BenchContext,
  diff,
  percentile,
  round,
  snapshot,
  startBenchStack,
  waitForJobs,
} from './support';

/** What the cost model needs from a measured run. */
export interface MeasuredUsage {
  readonly devices: number;
  readonly aws: AwsRequestCounts;
  readonly workerInvocations: number;
  readonly workerBusyMs: number;
  readonly balenaRequests: number;
}

const quietIo = (stderr: string[]) => ({
  stdout: { write: () => true } as unknown as NodeJS.WritableStream,
  stderr: {
    write: (chunk: string) => {
      stderr.push(chunk);
      return true;
    },
  } as unknown as NodeJS.WritableStream,
  isTTY: false,
  env: {},
});

/** Enrolls the stack's fleet through the CLI's enroll path and follows the jobs to the end. */
async function enrollAndWait(
  ctx: BenchContext,
  stack: LocalStack,
  fleet: string,
  timeoutMs: number,
) {
  const dir = mkdtempSync(path.join(tmpdir(), 'bench-'));
  const stateFile = path.join(dir, 'stack.json');
  writeFileSync(stateFile, JSON.stringify(stackFile(stack, undefined)));
  const stderr: string[] = [];
  const started = Date.now();
  try {
    const code = await runCli(
      ['enroll', '--fleet', fleet, '--concurrency', '4', '--state-file', stateFile],
      quietIo(stderr),
    );
    if (code !== 0) throw new Error(`enroll exited ${code}: ${stderr.join('').slice(-500)}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const aws = makeAwsClients({ region: stack.region, endpoint: ctx.motoEndpoint, maxAttempts: 3 });
  const jobs = await new DynamoDbJobStore(aws.doc, stack.tableName, { ttlDays: 1 }).listJobs({
    limit: Number.POSITIVE_INFINITY,
  });
  const done = await waitForJobs(
    ctx,
    stack,
    jobs.map((j) => j.jobId),
    timeoutMs,
  );
  return { started, jobs: [...done.values()] };
}

function jobDurations(jobs: readonly Job[]): number[] {
  return jobs.map((j) => Date.parse(j.updatedAt) - Date.parse(j.createdAt));
}

function lastFinish(jobs: readonly Job[]): number {
  return Math.max(...jobs.map((j) => Date.parse(j.updatedAt)));
}

async function certificatesPerDevice(
  ctx: BenchContext,
  stack: LocalStack,
  uuids: readonly string[],
) {
  const aws = makeAwsClients({ region: stack.region, endpoint: ctx.motoEndpoint, maxAttempts: 3 });
  let total = 0;
  for (const uuid of uuids) {
    const out = await aws.iot.send(new ListThingPrincipalsCommand({ thingName: uuid }));
    total += out.principals?.length ?? 0;
  }
  return total / uuids.length;
}

/** bulk: a fleet enrolled through the real pipeline (CLI enroll → SQS → worker → IoT, balena). */
export async function runBulk(ctx: BenchContext, devices: number) {
  ctx.log(`bulk: enrolling ${devices} devices`);
  const { stack, proxy, fleet, seeded, units } = await startBenchStack(ctx, devices);
  try {
    stack.sim!.clearRequests();
    const before = snapshot(proxy, units);
    const invocationsBefore = stack.poller.invocations;
    const busyBefore = stack.poller.busyMs;
    const { started, jobs } = await enrollAndWait(ctx, stack, fleet, 20 * 60_000);
    const aws = diff(snapshot(proxy, units), before);
    const durations = jobDurations(jobs);
    const seconds = (lastFinish(jobs) - started) / 1000;
    const balenaRequests = stack.sim!.requests.length;
    const summary = {
      devices,
      devicesPerSecond: round(devices / seconds, 2),
      p50Ms: percentile(durations, 50),
      p99Ms: percentile(durations, 99),
      failed: jobs.filter((j) => j.status === 'failed').length,
      certificatesPerDevice: round(
        await certificatesPerDevice(
          ctx,
          stack,
          seeded.map((d) => d.uuid),
        ),
        3,
      ),
      callsPerDevice: {
        iot: round(aws.iot / devices, 2),
        balena: round(balenaRequests / devices, 2),
        dynamodb: round(aws.dynamodb / devices, 2),
        sqs: round(aws.sqs / devices, 2),
      },
      iotCallsByOperation: Object.fromEntries(
        Object.entries(aws.byOperation)
          .filter(([op]) => !op.includes('.'))
          .map(([op, n]) => [op, round(n / devices, 2)]),
      ),
    };
    ctx.log(
      `bulk: emulator time by operation (ms): ${JSON.stringify(
        Object.fromEntries(
          Object.entries(proxy.upstreamMs)
            .sort((a, b) => b[1] - a[1])
            .slice(0, 8)
            .map(([op, ms]) => [op, Math.round(ms)]),
        ),
      )}`,
    );
    const usage: MeasuredUsage = {
      devices,
      aws,
      workerInvocations: stack.poller.invocations - invocationsBefore,
      workerBusyMs: stack.poller.busyMs - busyBefore,
      balenaRequests,
    };
    return { summary, usage };
  } finally {
    await stack.stop();
    await proxy.close();
  }
}

/** burst: every device POSTs at once with its own key, as after a fleet-wide reboot. */
export async function runBurst(ctx: BenchContext, devices: number) {
  ctx.log(`burst: ${devices} devices POST at once`);
  const { stack, proxy, seeded } = await startBenchStack(ctx, devices);
  try {
    const latencies: number[] = [];
    let errors = 0;
    await Promise.all(
      seeded.map(async (device) => {
        const started = performance.now();
        const answer = await fetch(`${stack.apiUrl}/v1/provision`, {
          method: 'POST',
          headers: {
            'Content-Type': 'application/json',
            Authorization: `Bearer ${device.deviceKey}`,
          },
          body: JSON.stringify({ uuid: device.uuid }),
        }).catch(() => undefined);
        await answer?.arrayBuffer();
        latencies.push(performance.now() - started);
        if (answer?.status !== 202) errors++;
      }),
    );
    return {
      devices,
      apiP50Ms: round(percentile(latencies, 50)),
      apiP99Ms: round(percentile(latencies, 99)),
      errors,
    };
  } finally {
    await stack.stop();
    await proxy.close();
  }
}

/** longpoll: delay between a job reaching its terminal state and the long-poll answer. */
export async function runLongPoll(ctx: BenchContext, samples: number) {
  ctx.log(`longpoll: ${samples} samples`);
  const { stack, proxy, seeded } = await startBenchStack(ctx, samples);
  try {
    const delays: number[] = [];
    const endToEnd: number[] = [];
    const sample = async (device: (typeof seeded)[number], sequential: boolean) => {
      const auth = { Authorization: `Bearer ${stack.operatorToken}` };
      const postedAt = performance.now();
      const posted = await fetch(`${stack.apiUrl}/v1/provision`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', ...auth },
        body: JSON.stringify({ uuid: device.uuid }),
      });
      const { jobId } = (await posted.json()) as { jobId: string };
      const answer = await fetch(`${stack.apiUrl}/v1/jobs/${jobId}?wait=25`, { headers: auth });
      const job = (await answer.json()) as { status: string; updatedAt: string };
      const answeredAt = Date.now();
      if (job.status === 'succeeded' || job.status === 'failed') {
        delays.push(answeredAt - Date.parse(job.updatedAt));
        if (sequential) endToEnd.push(performance.now() - postedAt);
      }
    };
    // One device at a time first (the POST-to-succeeded time of a lone device), then ten at once.
    const lone = seeded.slice(0, Math.min(10, seeded.length));
    for (const device of lone) await sample(device, true);
    const rest = seeded.slice(lone.length);
    for (let i = 0; i < rest.length; i += 10) {
      await Promise.all(rest.slice(i, i + 10).map((device) => sample(device, false)));
    }
    return {
      samples: delays.length,
      p50Ms: percentile(delays, 50),
      p99Ms: percentile(delays, 99),
      postToSucceededP50Ms: round(percentile(endToEnd, 50)),
      postToSucceededP99Ms: round(percentile(endToEnd, 99)),
    };
  } finally {
    await stack.stop();
    await proxy.close();
  }
}

/**
 * throttled: a layer in front of moto enforces AWS's default IoT quotas and answers
 * ThrottlingException past them; the worker paces itself per operation. Also measured without
 * pacing, for comparison.
 */
export async function runThrottled(ctx: BenchContext, devices: number, rateScale: number) {
  const rates = Object.fromEntries(
    Object.entries(DEFAULT_IOT_RATES).map(([operation, rate]) => [operation, rate * rateScale]),
  );
  const paced = await throttledRun(ctx, devices, true, rates);
  const unpaced = await throttledRun(ctx, Math.min(devices, 100), false, rates);
  return {
    ...paced,
    rateScale,
    unpaced,
    alternative: {
      sequence: 'device policy attached to a thing group instead of to each certificate',
      removes: 'AttachPolicy (15/s) from the per-device sequence',
      tightestLimitPerSecond: DEFAULT_IOT_RATES.CreateCertificateFromCsr,
      note: 'CreateCertificateFromCsr has the same 15/s quota, so the ceiling stays 15 devices/s; CreateKeysAndCertificate would lower it to 10/s',
    },
  };
}

async function throttledRun(
  ctx: BenchContext,
  devices: number,
  pacing: boolean,
  rates: Record<string, number>,
) {
  ctx.log(`throttled: ${devices} devices, pacing ${pacing ? 'on' : 'off'}`);
  const { stack, proxy, fleet, units } = await startBenchStack(ctx, devices, {
    rates,
    iotRateLimits: rates,
    workerPacing: pacing,
    maxReceiveCount: 5,
    backoffBaseSeconds: 1,
    backoffMaxSeconds: 20,
  });
  try {
    const before = snapshot(proxy, units);
    const throttledBefore = Object.values(proxy.throttled).reduce((a, b) => a + b, 0);
    const { started, jobs } = await enrollAndWait(ctx, stack, fleet, 20 * 60_000);
    const aws = diff(snapshot(proxy, units), before);
    const seconds = (lastFinish(jobs) - started) / 1000;
    const devicesPerSecond = devices / seconds;
    let tightest = Number.POSITIVE_INFINITY;
    let tightestOperation = '';
    for (const [operation, calls] of Object.entries(aws.byOperation)) {
      const rate = rates[operation];
      if (!rate || calls === 0) continue;
      const perDevice = rate / (calls / devices);
      if (perDevice < tightest) {
        tightest = perDevice;
        tightestOperation = operation;
      }
    }
    const direct = makeAwsClients({
      region: stack.region,
      endpoint: ctx.motoEndpoint,
      maxAttempts: 3,
    });
    const dlq = await direct.sqs.send(
      new GetQueueAttributesCommand({
        QueueUrl: stack.dlqUrl,
        AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'],
      }),
    );
    return {
      devices,
      limitPerSecond: round(tightest, 2),
      limitingOperation: tightestOperation,
      devicesPerSecond: round(devicesPerSecond, 2),
      ratioToLimit: round(devicesPerSecond / tightest, 3),
      failed: jobs.filter((j) => j.status === 'failed').length,
      dlq:
        Number(dlq.Attributes?.ApproximateNumberOfMessages ?? 0) +
        Number(dlq.Attributes?.ApproximateNumberOfMessagesNotVisible ?? 0),
      throttleErrorsSeen:
        Object.values(proxy.throttled).reduce((a, b) => a + b, 0) - throttledBefore,
    };
  } finally {
    await stack.stop();
    await proxy.close();
  }
}
