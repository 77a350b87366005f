import { randomBytes } from 'node:crypto';
import { composeApi } from '../api/compose';
import { type AwsClients, makeAwsClients } from '../shared/aws-clients';
import {
  type ApiConfig,
  apiConfigSchema,
  type WorkerConfig,
  workerConfigSchema,
} from '../shared/config';
import { composeWorker } from '../worker/compose';
import type { WorkerDeps } from '../worker/handler';
import type { BalenaSimSeed, BalenaSimulator } from './balena-sim';
import { startBalenaSimulator } from './balena-sim';
import { bootstrapResources, type StackResources } from './bootstrap';
import { serveApi } from './http-adapter';
import { type MotoServer, startMoto } from './moto';
import { SqsPoller } from './sqs-poller';

export const LOCAL_OPERATOR_BALENA_KEY = 'local-operator-balena-key';

export interface LocalStackOptions {
  /** A running moto; when absent one is started (and stopped with the stack). */
  readonly awsEndpoint?: string;
  /** Use real AWS (default credential chain) instead of moto. */
  readonly realAws?: boolean;
  readonly region?: string;
  /** Suffix for table/queue/policy names so several stacks share one moto. Default: random. */
  readonly namespace?: string;
  /** An external balena API (or simulator) and the operator key for it; default: an in-process simulator. */
  readonly balena?: { readonly url: string; readonly apiKey: string };
  readonly seed?: BalenaSimSeed;
  readonly operatorToken?: string;
  readonly apiPort?: number;
  readonly maxReceiveCount?: number;
  readonly visibilityTimeoutSeconds?: number;
  readonly leaseSeconds?: number;
  readonly backoffBaseSeconds?: number;
  readonly backoffMaxSeconds?: number;
  readonly legacyWaitSeconds?: number;
  readonly legacyEnabled?: boolean;
  readonly pollerConcurrency?: number;
  readonly batchSize?: number;
  /** The worker's timeout: a hung invocation is abandoned after this (default 60 s). */
  readonly invocationTimeoutMs?: number;
  /** IoT through another endpoint, e.g. a throttling proxy in front of moto. */
  readonly iotEndpoint?: string;
  readonly keyAlgorithm?: 'ec-p256' | 'rsa-2048';
  /** Pace IoT calls under the default quotas (default true, as deployed). */
  readonly workerPacing?: boolean;
  /** The quotas to pace under (default: AWS's defaults). */
  readonly iotRateLimits?: Readonly<Record<string, number>>;
  /** Written to devices as AWS_DATA_ENDPOINT when set. */
  readonly iotDataEndpoint?: string;
  /** Test hooks for the worker (e.g. `afterStep` to stop it between steps). */
  readonly workerOverrides?: Partial<WorkerDeps>;
  /** Start the SQS poller (Lambda's event source mapping); default true. */
  readonly startWorker?: boolean;
}

/** What the CLI and scripts need to reach a local stack (`.local/stack.json`). */
export interface StackDescriptor {
  readonly apiUrl: string;
  /** The emulator endpoint; absent when the stack uses real AWS. */
  readonly awsEndpoint?: string;
  readonly region: string;
  readonly tableName: string;
  readonly queueUrl: string;
  readonly dlqUrl: string;
  readonly policyName: string;
  readonly balenaApiUrl: string;
  readonly balenaApiKey: string;
  readonly operatorToken: string;
}

export interface LocalStack extends StackDescriptor {
  readonly aws: AwsClients;
  readonly resources: StackResources;
  /** The in-process balena simulator, when the stack started one. */
  readonly sim?: BalenaSimulator;
  readonly poller: SqsPoller;
  readonly apiConfig: ApiConfig;
  readonly workerConfig: WorkerConfig;
  readonly workerHandler: Awaited<ReturnType<typeof composeWorker>>;
  descriptor(): StackDescriptor;
  stop(): Promise<void>;
}

/**
 * Starts the whole pipeline on this machine: moto (AWS), the balena simulator, the API handler
 * behind an HTTP server and the worker handler behind an SQS poller, all on 127.0.0.1.
 */
export async function startLocalStack(options: LocalStackOptions = {}): Promise<LocalStack> {
  const region = options.region ?? 'us-east-1';
  const stops: Array<() => Promise<void>> = [];
  try {
    let moto: MotoServer | undefined;
    if (!options.awsEndpoint && !options.realAws) {
      moto = await startMoto();
      stops.push(() => moto!.stop());
    }
    const awsEndpoint = options.awsEndpoint ?? moto?.endpoint;
    const aws = makeAwsClients({ region, endpoint: awsEndpoint, maxAttempts: 3 });
    const ns = options.namespace ?? randomBytes(4).toString('hex');
    const maxReceiveCount = options.maxReceiveCount ?? 5;
    const visibility = options.visibilityTimeoutSeconds ?? 30;
    const resources = await bootstrapResources(
      aws,
      {
        tableName: `provisioner-jobs-${ns}`,
        queueName: `provisioner-work-${ns}`,
        dlqName: `provisioner-dlq-${ns}`,
        policyName: `provisioner-device-policy-${ns}`,
      },
      { maxReceiveCount, visibilityTimeoutSeconds: visibility },
    );

    let sim: BalenaSimulator | undefined;
    let balena = options.balena;
    if (!balena) {
      sim = await startBalenaSimulator({ seed: options.seed });
      sim.seed({ users: [{ username: 'operator', apiKey: LOCAL_OPERATOR_BALENA_KEY }] });
      stops.push(() => sim!.stop());
      balena = { url: sim.url, apiKey: LOCAL_OPERATOR_BALENA_KEY };
    }
    const operatorToken = options.operatorToken ?? `op-${randomBytes(16).toString('hex')}`;

    const common = {
      AWS_REGION: region,
      TABLE_NAME: resources.tableName,
      QUEUE_URL: resources.queueUrl,
      AWS_ENDPOINT_URL: awsEndpoint,
      BALENA_API_URL: balena.url,
      BALENA_API_KEY: balena.apiKey,
    };
    const apiConfig = apiConfigSchema.parse({
      ...common,
      OPERATOR_TOKEN: operatorToken,
      LEGACY_ROUTE_ENABLED: String(options.legacyEnabled ?? true),
      LEGACY_WAIT_SECONDS: String(options.legacyWaitSeconds ?? 25),
    });
    const workerConfig = workerConfigSchema.parse({
      ...common,
      ...(options.iotEndpoint ? { IOT_ENDPOINT_URL: options.iotEndpoint } : {}),
      IOT_POLICY_NAME: resources.policyName,
      MAX_RECEIVE_COUNT: String(maxReceiveCount),
      LEASE_SECONDS: String(options.leaseSeconds ?? Math.max(1, visibility * 0.75)),
      BACKOFF_BASE_SECONDS: String(options.backoffBaseSeconds ?? 1),
      BACKOFF_MAX_SECONDS: String(options.backoffMaxSeconds ?? 30),
      DEVICE_KEY_ALGORITHM: options.keyAlgorithm ?? 'ec-p256',
      IOT_PACING: String(options.workerPacing ?? true),
      ...(options.iotRateLimits ? { IOT_RATE_LIMITS: JSON.stringify(options.iotRateLimits) } : {}),
      ...(options.iotDataEndpoint ? { IOT_DATA_ENDPOINT: options.iotDataEndpoint } : {}),
    });
    const apiHandler = await composeApi(apiConfig);
    const workerHandler = await composeWorker(workerConfig, options.workerOverrides);
    const api = await serveApi(apiHandler, { port: options.apiPort });
    stops.push(() => api.close());
    const poller = new SqsPoller(aws.sqs, workerHandler, {
      queueUrl: resources.queueUrl,
      batchSize: options.batchSize ?? 10,
      concurrency: options.pollerConcurrency ?? 4,
      waitTimeSeconds: 1,
      region,
      invocationTimeoutMs: options.invocationTimeoutMs,
    });
    if (options.startWorker ?? true) await poller.start();
    stops.push(() => poller.stop());

    const descriptor: StackDescriptor = {
      apiUrl: api.url,
      awsEndpoint,
      region,
      tableName: resources.tableName,
      queueUrl: resources.queueUrl,
      dlqUrl: resources.dlqUrl,
      policyName: resources.policyName,
      balenaApiUrl: balena.url,
      balenaApiKey: balena.apiKey,
      operatorToken,
    };
    return {
      ...descriptor,
      aws,
      resources,
      sim,
      poller,
      apiConfig,
      workerConfig,
      workerHandler,
      descriptor: () => descriptor,
      stop: () => stopAll(stops),
    };
  } catch (error: unknown) {
    await stopAll(stops);
    throw error;
  }
}

async function stopAll(stops: Array<() => Promise<void>>): Promise<void> {
  for (const stop of stops.reverse()) {
    await stop().catch(() => undefined);
  }
}
