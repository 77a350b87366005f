import { makeAwsClients } from '../shared/aws-clients';
import { BalenaSdkDirectory, makeBalenaSdk } from '../shared/balena-directory';
import type { WorkerConfig } from '../shared/config';
import { AwsIotRegistry } from '../shared/iot-registry';
import { DynamoDbJobStore } from '../shared/job-store';
import { SqsWorkQueue } from '../shared/queue';
import { AdaptiveRateLimiter, DEFAULT_IOT_RATES, paceIotClient } from '../shared/rate-limiter';
import { resolveSecret } from '../shared/secrets';
import { makeHandler, type WorkerDeps } from './handler';

/** Builds the worker's dependencies from its configuration (Lambda and the local stack). */
export async function composeWorkerDeps(
  config: WorkerConfig,
  overrides: Partial<WorkerDeps> = {},
): Promise<WorkerDeps> {
  const aws = makeAwsClients({
    region: config.AWS_REGION,
    endpoint: config.AWS_ENDPOINT_URL,
    iotEndpoint: config.IOT_ENDPOINT_URL,
  });
  if (config.IOT_PACING) {
    // Each concurrent worker instance gets an equal share of the account-wide quotas.
    const quotas = config.IOT_RATE_LIMITS ?? DEFAULT_IOT_RATES;
    const share = Object.fromEntries(
      Object.entries(quotas).map(([op, rate]) => [op, rate / config.WORKER_MAX_CONCURRENCY]),
    );
    paceIotClient(aws.iot, new AdaptiveRateLimiter(share));
  }
  const apiKey = await resolveSecret(
    'BALENA_API_KEY',
    config.BALENA_API_KEY,
    config.BALENA_API_KEY_SECRET_ARN,
    { region: config.AWS_REGION, endpoint: config.AWS_ENDPOINT_URL },
  );
  const sdk = await makeBalenaSdk({
    apiUrl: config.BALENA_API_URL,
    apiKey,
    maxInlineRetryAfterMs: 2_000,
  });
  return {
    store: new DynamoDbJobStore(aws.doc, config.TABLE_NAME, { ttlDays: config.JOB_TTL_DAYS }),
    queue: new SqsWorkQueue(aws.sqs, config.QUEUE_URL),
    iot: new AwsIotRegistry(aws.iot),
    directory: new BalenaSdkDirectory(sdk),
    policyName: config.IOT_POLICY_NAME,
    keyAlgorithm: config.DEVICE_KEY_ALGORITHM,
    dataEndpoint: config.IOT_DATA_ENDPOINT,
    leaseMs: config.LEASE_SECONDS * 1000,
    maxReceiveCount: config.MAX_RECEIVE_COUNT,
    backoff: { baseSeconds: config.BACKOFF_BASE_SECONDS, maxSeconds: config.BACKOFF_MAX_SECONDS },
    ...overrides,
  };
}

export async function composeWorker(config: WorkerConfig, overrides: Partial<WorkerDeps> = {}) {
  return makeHandler(await composeWorkerDeps(config, overrides));
}
