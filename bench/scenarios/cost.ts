import type { MeasuredUsage } from './pipeline';

/**
 * AWS public list prices, us-east-1, as published on the AWS pricing pages (Lambda, SQS,
 * DynamoDB on-demand after the November 2024 reduction, API Gateway HTTP APIs, IoT Core
 * registry), taken as of 2026-12-04 from those pages' last published values; not re-checked
 * online from this machine. Free tiers are ignored.
 */
export const PRICES = {
  date: '2026-12-04',
  region: 'us-east-1',
  lambdaPerRequest: 0.2 / 1e6,
  lambdaPerGbSecondArm: 0.0000133334,
  sqsPerRequest: 0.4 / 1e6,
  dynamodbPerWriteUnit: 0.625 / 1e6,
  dynamodbPerReadUnit: 0.125 / 1e6,
  httpApiPerRequest: 1.0 / 1e6,
  iotRegistryPerOperation: 1.25 / 1e6,
};

/** Deployed memory sizes (infra defaults). */
const API_MEMORY_GB = 0.5;
const WORKER_MEMORY_GB = 1;

/**
 * cost: requests counted in the bulk run, scaled to 1000 devices, plus the device-facing API a
 * device-initiated provisioning adds (one POST and one long poll held until the job ends).
 * The worker's GB-s is its handler time measured against moto, an upper bound: moto answers
 * slower than AWS.
 */
export function estimateCost(usage: MeasuredUsage, deviceHoldMs: number) {
  const scale = 1000 / usage.devices;
  const apiRequests = 2 * 1000;
  // The POST answers at once; the long poll holds its Lambda until the job ends (median of a
  // lone device, from the longpoll scenario).
  const apiGbSeconds = 1000 * ((deviceHoldMs + 50) / 1000) * API_MEMORY_GB;
  const workerGbSeconds = (usage.workerBusyMs / 1000) * WORKER_MEMORY_GB * scale;
  const workerInvocations = usage.workerInvocations * scale;
  const breakdown = {
    lambdaRequests: (apiRequests + workerInvocations) * PRICES.lambdaPerRequest,
    lambdaCompute: (apiGbSeconds + workerGbSeconds) * PRICES.lambdaPerGbSecondArm,
    sqs: usage.aws.sqs * scale * PRICES.sqsPerRequest,
    dynamodb:
      usage.aws.dynamodbWriteUnits * scale * PRICES.dynamodbPerWriteUnit +
      usage.aws.dynamodbReadUnits * scale * PRICES.dynamodbPerReadUnit,
    apiGateway: apiRequests * PRICES.httpApiPerRequest,
    iotRegistry: usage.aws.iot * scale * PRICES.iotRegistryPerOperation,
  };
  const usd = Object.values(breakdown).reduce((a, b) => a + b, 0);
  const round6 = (n: number) => Math.round(n * 1e6) / 1e6;
  return {
    per1000Devices: {
      usd: round6(usd),
      breakdown: Object.fromEntries(Object.entries(breakdown).map(([k, v]) => [k, round6(v)])),
      requests: {
        apiGateway: apiRequests,
        lambdaInvocations: Math.round(apiRequests + workerInvocations),
        lambdaGbSeconds: Math.round((apiGbSeconds + workerGbSeconds) * 10) / 10,
        sqs: Math.round(usage.aws.sqs * scale),
        dynamodbWriteUnits: Math.round(usage.aws.dynamodbWriteUnits * scale),
        dynamodbReadUnits: Math.round(usage.aws.dynamodbReadUnits * scale),
        iot: Math.round(usage.aws.iot * scale),
      },
    },
    prices: PRICES,
    notes:
      'Worker GB-s is the measured handler time on this machine; SQS counts include the event source polling. Secrets Manager (one read per cold start) and CloudWatch are left out.',
  };
}
