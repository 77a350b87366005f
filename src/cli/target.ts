import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import {
  CloudFormationClient,
  CloudFormationServiceException,
  DescribeStacksCommand,
} from '@aws-sdk/client-cloudformation';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { IoTClient } from '@aws-sdk/client-iot';
import { SQSClient } from '@aws-sdk/client-sqs';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { BalenaSDK } from 'balena-sdk';
import { z } from 'zod';
import { ProvisioningService } from '../api/service';
import { type AwsClients, makeAwsClients } from '../shared/aws-clients';
import { BalenaSdkDirectory, makeBalenaSdk } from '../shared/balena-directory';
import { AwsIotRegistry } from '../shared/iot-registry';
import { DynamoDbJobStore } from '../shared/job-store';
import { SqsWorkQueue } from '../shared/queue';
import { UsageError } from './errors';
import type { CliIo } from './io';

export const DEFAULT_STATE_FILE = '.local/stack.json';
export const DEFAULT_BALENA_API_URL = 'https://api.balena-cloud.com';

/** The global options every command accepts. */
export interface TargetOptions {
  readonly stateFile?: string;
  readonly stack?: string;
  readonly region?: string;
  readonly policyName?: string;
}

/** What the CLI talks to: resource names plus how to reach AWS and balena. */
export interface Target {
  /** `local (<state file>)` or `stack <name> (<region>)`, for messages. */
  readonly label: string;
  readonly region?: string;
  readonly tableName: string;
  readonly queueUrl: string;
  readonly dlqUrl: string;
  readonly policyName?: string;
  /** The emulator endpoint of a local stack (dummy credentials); unset for a deployed stack. */
  readonly awsEndpoint?: string;
  /** A deployed stack reached through another endpoint (AWS_ENDPOINT_URL), with real credentials. */
  readonly endpointOverride?: string;
  readonly balenaApiUrl: string;
  readonly balenaApiKey?: string;
  /** What to tell the operator when the balena key is missing. */
  readonly balenaKeyHint: string;
}

/** `.local/stack.json` as `npm start` writes it (src/local/stack-file.ts). */
const stateFileSchema = z.object({
  aws: z.object({
    endpoint: z.string().url().optional(),
    region: z.string().min(1),
    tableName: z.string().min(1),
    queueUrl: z.string().min(1),
    dlqUrl: z.string().min(1),
    policyName: z.string().min(1),
  }),
  balena: z.object({
    apiUrl: z.string().url(),
    userApiKey: z.string().min(1),
  }),
});

/**
 * Resolves the target: `--stack <name>` (or PROVISIONER_STACK) reads a deployed stack's outputs
 * through CloudFormation with the operator's AWS credentials; otherwise the local stack's state
 * file (`--state-file`, PROVISIONER_STATE_FILE, default `.local/stack.json`).
 */
export async function resolveTarget(options: TargetOptions, io: CliIo): Promise<Target> {
  const stack = options.stack ?? io.env.PROVISIONER_STACK;
  if (stack && options.stateFile) {
    throw new UsageError('use either --stack or --state-file, not both');
  }
  if (stack) return resolveDeployedStack(stack, options, io);
  return readStateFile(options.stateFile ?? io.env.PROVISIONER_STATE_FILE ?? DEFAULT_STATE_FILE);
}

function readStateFile(file: string): Target {
  const resolved = path.resolve(file);
  if (!existsSync(resolved)) {
    throw new UsageError(
      `no local stack state at ${file}: start the local stack (npm start), pass --state-file, or target a deployed stack with --stack <name>`,
    );
  }
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(resolved, 'utf8'));
  } catch (error: unknown) {
    throw new UsageError(`${file} is not valid JSON: ${(error as Error).message}`);
  }
  const parsed = stateFileSchema.safeParse(raw);
  if (!parsed.success) {
    const fields = parsed.error.issues.map((issue) => issue.path.join('.')).join(', ');
    throw new UsageError(`${file} is not a local stack state file (bad or missing: ${fields})`);
  }
  const { aws, balena } = parsed.data;
  return {
    label: `local (${file})`,
    region: aws.region,
    tableName: aws.tableName,
    queueUrl: aws.queueUrl,
    dlqUrl: aws.dlqUrl,
    policyName: aws.policyName,
    awsEndpoint: aws.endpoint,
    balenaApiUrl: balena.apiUrl,
    balenaApiKey: balena.userApiKey,
    balenaKeyHint: `the state file ${file} has no balena key`,
  };
}

async function resolveDeployedStack(
  stackName: string,
  options: TargetOptions,
  io: CliIo,
): Promise<Target> {
  const region = options.region ?? io.env.AWS_REGION ?? io.env.AWS_DEFAULT_REGION;
  const endpoint = io.env.AWS_ENDPOINT_URL;
  const cloudformation = new CloudFormationClient({
    ...(region ? { region } : {}),
    ...(endpoint ? { endpoint } : {}),
  });
  let outputs: Map<string, string>;
  try {
    const out = await cloudformation.send(new DescribeStacksCommand({ StackName: stackName }));
    const found = out.Stacks?.[0];
    if (!found) throw new UsageError(`stack ${stackName} not found`);
    outputs = new Map(
      (found.Outputs ?? []).flatMap((o) =>
        o.OutputKey && o.OutputValue ? [[o.OutputKey, o.OutputValue] as const] : [],
      ),
    );
  } catch (error: unknown) {
    if (error instanceof CloudFormationServiceException && error.name === 'ValidationError') {
      throw new UsageError(
        `stack ${stackName} not found${region ? ` in ${region}` : ''}: ${error.message}`,
      );
    }
    throw error;
  } finally {
    cloudformation.destroy();
  }
  const required = (key: string): string => {
    const value = outputs.get(key);
    if (!value) {
      throw new UsageError(`stack ${stackName} has no ${key} output: is it a provisioner stack?`);
    }
    return value;
  };
  return {
    label: `stack ${stackName}${region ? ` (${region})` : ''}`,
    region,
    tableName: required('TableName'),
    queueUrl: required('QueueUrl'),
    dlqUrl: required('DlqUrl'),
    policyName: options.policyName ?? outputs.get('IotPolicyName'),
    endpointOverride: endpoint,
    balenaApiUrl: io.env.BALENA_API_URL ?? DEFAULT_BALENA_API_URL,
    balenaApiKey: io.env.BALENA_API_KEY || undefined,
    balenaKeyHint: 'set BALENA_API_KEY to your balena API key',
  };
}

/** The adapters a command uses, built once per run; `balena()` logs in on first use. */
export interface CliContext {
  readonly target: Target;
  readonly aws: AwsClients;
  readonly store: DynamoDbJobStore;
  readonly queue: SqsWorkQueue;
  readonly iot: AwsIotRegistry;
  readonly service: ProvisioningService;
  /** The balena directory with the operator's key; UsageError (exit 2) naming the key when missing. */
  balena(): Promise<BalenaSdkDirectory>;
  /** The balena-sdk behind `balena()`, for the bulk reads the directory port does not offer. */
  balenaSdk(): Promise<BalenaSDK>;
  /** The IoT policy name; UsageError when the target has none and `--policy-name` was not given. */
  policyName(): string;
  close(): void;
}

export function openContext(target: Target, options: TargetOptions = {}): CliContext {
  const aws = target.awsEndpoint
    ? makeAwsClients({ region: target.region ?? 'us-east-1', endpoint: target.awsEndpoint })
    : deployedClients(target.region, target.endpointOverride);
  const store = new DynamoDbJobStore(aws.doc, target.tableName, { ttlDays: 30 });
  const queue = new SqsWorkQueue(aws.sqs, target.queueUrl);
  let sdk: Promise<BalenaSDK> | undefined;
  const balenaSdk = (): Promise<BalenaSDK> => {
    const apiKey = target.balenaApiKey;
    if (!apiKey) {
      return Promise.reject(
        new UsageError(`BALENA_API_KEY is required for this command: ${target.balenaKeyHint}`),
      );
    }
    sdk ??= makeBalenaSdk({ apiUrl: target.balenaApiUrl, apiKey, maxInlineRetryAfterMs: 10_000 });
    return sdk;
  };
  return {
    target,
    aws,
    store,
    queue,
    iot: new AwsIotRegistry(aws.iot),
    service: new ProvisioningService({ store, queue }),
    balena: async () => new BalenaSdkDirectory(await balenaSdk()),
    balenaSdk,
    policyName() {
      const name = options.policyName ?? target.policyName;
      if (!name) {
        throw new UsageError(
          `the target has no IotPolicyName output: pass --policy-name <name> (${target.label})`,
        );
      }
      return name;
    },
    close() {
      aws.iot.destroy();
      aws.sqs.destroy();
      aws.doc.destroy();
      aws.dynamodb.destroy();
    },
  };
}

/** AWS clients with the default credential chain; the region from the target or the SDK's own config. */
function deployedClients(region: string | undefined, endpoint: string | undefined): AwsClients {
  const base = { ...(region ? { region } : {}), ...(endpoint ? { endpoint } : {}), maxAttempts: 5 };
  const dynamodb = new DynamoDBClient(base);
  return {
    iot: new IoTClient(base),
    sqs: new SQSClient(base),
    dynamodb,
    doc: DynamoDBDocumentClient.from(dynamodb, {
      marshallOptions: { removeUndefinedValues: true },
    }),
  };
}
