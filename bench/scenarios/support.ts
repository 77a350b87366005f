import { randomBytes } from 'node:crypto';
import type { SimDeviceSeed } from '../../src/local/balena-sim';
import { startThrottleProxy, type ThrottleProxy } from '../../src/local/iot-throttle-proxy';
import { type LocalStack, type LocalStackOptions, startLocalStack } from '../../src/local/stack';
import { makeAwsClients } from '../../src/shared/aws-clients';
import type { Job } from '../../src/shared/domain';
import { DynamoDbJobStore } from '../../src/shared/job-store';

export interface BenchContext {
  readonly motoEndpoint: string;
  readonly log: (line: string) => void;
}

/** AWS requests seen by the counting proxy, by service. */
export interface AwsRequestCounts {
  readonly iot: number;
  readonly dynamodb: number;
  readonly sqs: number;
  /** DynamoDB write and read request units, estimated from each request (items ≤ 1 KB / 4 KB). */
  readonly dynamodbWriteUnits: number;
  readonly dynamodbReadUnits: number;
  readonly byOperation: Record<string, number>;
}

/**
 * A local stack whose every AWS call goes through a counting (and optionally throttling) proxy
 * in front of moto, with production-like timings.
 */
export async function startBenchStack(
  ctx: BenchContext,
  devices: number,
  options: LocalStackOptions & { rates?: Record<string, number> } = {},
): Promise<{
  stack: LocalStack;
  proxy: ThrottleProxy;
  fleet: string;
  seeded: Array<Required<Omit<SimDeviceSeed, 'id'>>>;
  units: { write: number; read: number };
}> {
  const units = { write: 0, read: 0 };
  const proxy = await startThrottleProxy({
    target: ctx.motoEndpoint,
    rates: options.rates,
    inspect: (operation, body) => countUnits(operation, body, units),
  });
  const fleet = `bench/${randomBytes(3).toString('hex')}`;
  const seeded = Array.from({ length: devices }, (_, i) => ({
    uuid: randomBytes(16).toString('hex'),
    deviceName: `bench-${i}`,
    isOnline: true,
    deviceKey: `bench-key-${randomBytes(12).toString('hex')}`,
  }));
  const stack = await startLocalStack({
    awsEndpoint: proxy.url,
    seed: { fleets: [{ slug: fleet, devices: seeded }] },
    visibilityTimeoutSeconds: 60,
    invocationTimeoutMs: 30_000,
    leaseSeconds: 45,
    pollerConcurrency: 4,
    batchSize: 10,
    ...options,
  });
  return { stack, proxy, fleet, seeded, units };
}

function countUnits(operation: string, body: Buffer, units: { write: number; read: number }): void {
  if (!operation.startsWith('DynamoDB.')) return;
  const kb = Math.max(1, Math.ceil(body.length / 1024));
  switch (operation) {
    case 'DynamoDB.TransactWriteItems': {
      const items =
        (JSON.parse(body.toString('utf8')) as { TransactItems?: unknown[] }).TransactItems ?? [];
      // Transactions cost two write units per item (per KB).
      units.write += 2 * items.length * Math.max(1, Math.ceil(body.length / items.length / 1024));
      break;
    }
    case 'DynamoDB.PutItem':
    case 'DynamoDB.UpdateItem':
    case 'DynamoDB.DeleteItem':
      units.write += kb;
      break;
    case 'DynamoDB.GetItem':
      units.read += 1; // strongly consistent, items under 4 KB
      break;
    case 'DynamoDB.BatchGetItem': {
      const request = JSON.parse(body.toString('utf8')) as {
        RequestItems?: Record<string, { Keys?: unknown[] }>;
      };
      for (const table of Object.values(request.RequestItems ?? {}))
        units.read += table.Keys?.length ?? 0;
      break;
    }
    default:
      units.read += 1;
  }
}

export function snapshot(
  proxy: ThrottleProxy,
  units: { write: number; read: number },
): AwsRequestCounts {
  const byOperation = { ...proxy.calls };
  let iot = 0;
  let dynamodb = 0;
  let sqs = 0;
  for (const [operation, count] of Object.entries(byOperation)) {
    if (operation.startsWith('DynamoDB.')) dynamodb += count;
    else if (operation.startsWith('SQS.')) sqs += count;
    else if (operation !== 'Other') iot += count;
  }
  return {
    iot,
    dynamodb,
    sqs,
    dynamodbWriteUnits: units.write,
    dynamodbReadUnits: units.read,
    byOperation,
  };
}

export function diff(after: AwsRequestCounts, before: AwsRequestCounts): AwsRequestCounts {
  const byOperation: Record<string, number> = {};
  for (const [operation, count] of Object.entries(after.byOperation)) {
    const delta = count - (before.byOperation[operation] ?? 0);
    if (delta > 0) byOperation[operation] = delta;
  }
  return {
    iot: after.iot - before.iot,
    dynamodb: after.dynamodb - before.dynamodb,
    sqs: after.sqs - before.sqs,
    dynamodbWriteUnits: after.dynamodbWriteUnits - before.dynamodbWriteUnits,
    dynamodbReadUnits: after.dynamodbReadUnits - before.dynamodbReadUnits,
    byOperation,
  };
}

/**
 * Follows the jobs (through a client that bypasses the counting proxy) until all have ended,
 * reading the whole job table once a second so the observer does not load moto.
 */
export async function waitForJobs(
  ctx: BenchContext,
  stack: LocalStack,
  jobIds: readonly string[],
  timeoutMs: number,
): Promise<Map<string, Job>> {
  const aws = makeAwsClients({ region: stack.region, endpoint: ctx.motoEndpoint, maxAttempts: 3 });
  const store = new DynamoDbJobStore(aws.doc, stack.tableName, { ttlDays: 1 });
  const wanted = new Set(jobIds);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const jobs = (await store.listJobs({ limit: Number.POSITIVE_INFINITY })).filter((j) =>
      wanted.has(j.jobId),
    );
    const done = jobs.filter((j) => j.status === 'succeeded' || j.status === 'failed');
    if (done.length === wanted.size) return new Map(done.map((j) => [j.jobId, j]));
    if (Date.now() > deadline) {
      throw new Error(`${wanted.size - done.length} jobs still running after ${timeoutMs} ms`);
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index] as number;
}

export function round(value: number, digits = 1): number {
  const factor = 10 ** digits;
  return Math.round(value * factor) / factor;
}
