import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Node } from 'constructs';
import { z } from 'zod';

/** CloudWatch Logs accepts only these retention periods (days). */
export const LOG_RETENTION_DAYS = [
  1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288,
  3653,
] as const;

/** `-c key=value` arrives as a string, cdk.json and config files as JSON: accept both. */
const bool = z.preprocess(
  (v) => (v === 'true' ? true : v === 'false' ? false : v),
  z.boolean({ error: "expected true or 'true' / 'false'" }),
);
const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
const optionalText = <T extends z.ZodType>(schema: T) =>
  z.preprocess((v) => (v === '' || v === null ? undefined : v), schema.optional());
const list = <T extends z.ZodType>(item: T) =>
  z.preprocess(
    (v) =>
      typeof v === 'string'
        ? v
            .split(',')
            .map((s) => s.trim())
            .filter(Boolean)
        : v,
    z.array(item).min(1),
  );

/** A complete Secrets Manager ARN (with the 6-character suffix), so IAM can name it exactly. */
const secretArn = z
  .string()
  .regex(
    /^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[\w/+=.@-]+-[A-Za-z0-9]{6}$/,
    'expected the complete secret ARN (ending in -XXXXXX), as shown by the Secrets Manager console',
  );

/**
 * An MQTT topic prefix without wildcards or leading/trailing slash. `$aws/things` is allowed: it
 * grants each device its own shadow and jobs topics.
 */
const topicPrefix = z
  .string()
  .regex(
    /^\$?[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)*$/,
    'expected topic levels separated by "/", without wildcards',
  );

/** Every deploy-time setting of the provisioner, with its default. Documented in the README (Deploy to AWS). */
export const provisionerConfigSchema = z
  .object({
    /** CloudFormation stack name. */
    stackName: z
      .string()
      .regex(/^[A-Za-z][A-Za-z0-9-]{0,127}$/)
      .default('BalenaIotProvisioner'),
    /** balena API the Lambdas talk to (openBalena users point this at their own API). */
    balenaApiUrl: z.url({ protocol: /^https$/ }).default('https://api.balena-cloud.com'),
    /** An existing secret holding the balena API key; unset: the stack creates one to fill in. */
    balenaApiKeySecretArn: optionalText(secretArn),
    /** An existing secret holding the operator bearer token; unset: the stack generates one. */
    operatorTokenSecretArn: optionalText(secretArn),
    /** Attach this existing IoT policy to device certificates instead of creating one. */
    existingIotPolicyName: optionalText(z.string().regex(/^[\w+=,.@-]{1,128}$/)),
    /**
     * The account's IoT data endpoint (`aws iot describe-endpoint --endpoint-type iot:Data-ATS`);
     * when set, the worker also writes it to devices as AWS_DATA_ENDPOINT.
     */
    iotDataEndpoint: optionalText(
      z.string().regex(/^[a-z0-9-]+(\.[a-z0-9-]+)+$/, 'expected a host name, without https://'),
    ),
    /** Topic prefixes of the created device policy: a device may use `<prefix>/<its uuid>/*`. */
    iotTopicPrefixes: list(topicPrefix).default(['balena']),
    /** Serve the unauthenticated legacy `POST /provision` for devices already in the field. */
    legacyRouteEnabled: bool.default(true),
    /** Key type the worker generates for devices that do not send a CSR. */
    deviceKeyAlgorithm: z.enum(['ec-p256', 'rsa-2048']).default('ec-p256'),
    /** Days a finished job stays in the table before DynamoDB TTL removes it. */
    jobTtlDays: int(1, 3650).default(30),
    /** Worker Lambda timeout; the queue's visibility timeout is six times this. */
    workerTimeoutSeconds: int(10, 900).default(60),
    workerMemoryMb: int(128, 10240).default(1024),
    apiMemoryMb: int(128, 10240).default(512),
    /** SQS messages per worker invocation. */
    workerBatchSize: int(1, 10000).default(10),
    /** Seconds the event source waits to fill a batch (required >= 1 when batch size > 10). */
    workerMaxBatchingWindowSeconds: int(0, 300).default(0),
    /**
     * Concurrent worker invocations (SQS event source maximum concurrency, 2..1000): the knob
     * that keeps provisioning under the IoT control-plane and balena API rate limits.
     */
    workerMaxConcurrency: int(2, 1000).default(5),
    /** Receives before SQS moves a message to the DLQ (also given to the worker). */
    maxReceiveCount: int(1, 1000).default(5),
    /** HTTP API stage throttling: steady-state requests per second and burst. */
    throttleRateLimit: int(1, 10000).default(50),
    throttleBurstLimit: int(1, 5000).default(100),
    /** Retention of the Lambda and API access log groups. */
    logRetentionDays: z.coerce
      .number()
      .refine((d) => (LOG_RETENTION_DAYS as readonly number[]).includes(d), {
        error: `expected one of ${LOG_RETENTION_DAYS.join(', ')}`,
      })
      .default(30),
    /** Alarm when the oldest queued message is older than this. */
    queueAgeAlarmSeconds: int(60, 1209600).default(900),
    /** Alarm notifications go to this address (an SNS subscription to confirm); unset: none. */
    alarmEmail: optionalText(z.email()),
    /** Active X-Ray tracing on both Lambdas. */
    tracing: bool.default(false),
    /** Keep the job table (deletion protection, RETAIN), log groups and IoT policy on stack deletion. */
    retainData: bool.default(true),
    /** CloudWatch namespace of the Powertools metrics. */
    metricsNamespace: z
      .string()
      .regex(/^[A-Za-z0-9_./#:-]{1,255}$/)
      .default('BalenaIotProvisioner'),
    /** Bundle the AWS SDK v3 into the Lambdas instead of using the one in the Node.js runtime. */
    bundleAwsSdk: bool.default(false),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.workerBatchSize > 10 && c.workerMaxBatchingWindowSeconds < 1) {
      ctx.addIssue({
        code: 'custom',
        path: ['workerMaxBatchingWindowSeconds'],
        message: 'SQS requires a batching window of at least 1 s when the batch size exceeds 10',
      });
    }
    if (c.throttleBurstLimit < c.throttleRateLimit) {
      ctx.addIssue({
        code: 'custom',
        path: ['throttleBurstLimit'],
        message: 'the burst limit must be at least the rate limit',
      });
    }
  });

/** The parsed configuration, defaults applied. */
export type ProvisionerConfig = z.infer<typeof provisionerConfigSchema>;
/** What a config file or `-c` may set: every key optional. */
export type ProvisionerConfigInput = z.input<typeof provisionerConfigSchema>;

/** Context key naming a JSON config file (relative to the working directory). */
export const CONFIG_FILE_CONTEXT_KEY = 'configFile';

export const CONFIG_KEYS = Object.keys(provisionerConfigSchema.shape) as ReadonlyArray<
  keyof ProvisionerConfig
>;

/** Parses `input`, failing with every invalid key named. */
export function parseProvisionerConfig(input: unknown): ProvisionerConfig {
  const parsed = provisionerConfigSchema.safeParse(input);
  if (!parsed.success) {
    const problems = parsed.error.issues
      .map((issue) => `  ${issue.path.join('.') || '(config)'}: ${issue.message}`)
      .join('\n');
    throw new Error(`invalid provisioner configuration:\n${problems}`);
  }
  return parsed.data;
}

/**
 * Reads the configuration from CDK context: the JSON file named by `-c configFile=...` (if any),
 * overridden key by key by `-c key=value` or cdk.json context.
 */
export function loadProvisionerConfig(node: Node): ProvisionerConfig {
  const file = node.tryGetContext(CONFIG_FILE_CONTEXT_KEY) as unknown;
  const fromFile: Record<string, unknown> =
    typeof file === 'string' && file !== ''
      ? (JSON.parse(readFileSync(path.resolve(file), 'utf8')) as Record<string, unknown>)
      : {};
  const fromContext: Record<string, unknown> = {};
  for (const key of CONFIG_KEYS) {
    const value = node.tryGetContext(key) as unknown;
    if (value !== undefined) fromContext[key] = value;
  }
  return parseProvisionerConfig({ ...fromFile, ...fromContext });
}
