import { z } from 'zod';

const bool = z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1');

/** Settings shared by the API and the worker, parsed from `process.env` once per cold start. */
const baseSchema = z.object({
  AWS_REGION: z.string().min(1),
  TABLE_NAME: z.string().min(1),
  QUEUE_URL: z.string().min(1),
  /** Local stack only: an emulator endpoint (moto) for every AWS client. */
  AWS_ENDPOINT_URL: z.string().url().optional(),
  /** Local stack / benchmarks only: a separate endpoint for IoT (a throttling proxy in front of moto). */
  IOT_ENDPOINT_URL: z.string().url().optional(),
  BALENA_API_URL: z.string().url().default('https://api.balena-cloud.com'),
  /** The operator's balena API key: either the value (local) or a Secrets Manager ARN (AWS). */
  BALENA_API_KEY: z.string().min(1).optional(),
  BALENA_API_KEY_SECRET_ARN: z.string().min(1).optional(),
  /** Days a finished job stays in the table before its TTL expires. */
  JOB_TTL_DAYS: z.coerce.number().int().positive().default(30),
});

export const apiConfigSchema = baseSchema.extend({
  /** Operator bearer token: value (local) or Secrets Manager ARN (AWS). */
  OPERATOR_TOKEN: z.string().min(16).optional(),
  OPERATOR_TOKEN_SECRET_ARN: z.string().min(1).optional(),
  /** The unauthenticated legacy `POST /provision` route for devices already in the field. */
  LEGACY_ROUTE_ENABLED: bool.default(true),
  /** How long the legacy route waits for the job before answering 202. */
  LEGACY_WAIT_SECONDS: z.coerce.number().int().min(0).max(28).default(25),
  /** Seconds a positive device-key check is cached. */
  AUTH_CACHE_SECONDS: z.coerce.number().int().min(0).default(300),
});

export const workerConfigSchema = baseSchema.extend({
  IOT_POLICY_NAME: z.string().min(1),
  /** Receives after which SQS moves a message to the DLQ (must match the redrive policy). */
  MAX_RECEIVE_COUNT: z.coerce.number().int().min(1).default(5),
  /** Key type the worker generates for devices that do not send a CSR. */
  DEVICE_KEY_ALGORITHM: z.enum(['ec-p256', 'rsa-2048']).default('ec-p256'),
  /** When set, also written to devices as AWS_DATA_ENDPOINT (the MQTT host they connect to). */
  IOT_DATA_ENDPOINT: z.string().min(1).optional(),
  /** Pace IoT calls under the account quotas (adaptive, per operation). */
  IOT_PACING: bool.default(true),
  /** Account-wide IoT quotas to pace under, JSON `{ "Operation": perSecond }`; default: AWS's defaults. */
  IOT_RATE_LIMITS: z
    .string()
    .transform((text, ctx) => {
      try {
        return z.record(z.string(), z.number().positive()).parse(JSON.parse(text));
      } catch {
        ctx.addIssue({ code: 'custom', message: 'must be a JSON object of positive numbers' });
        return z.NEVER;
      }
    })
    .optional(),
  /** Worker instances that share the quotas (the event source's maximum concurrency). */
  WORKER_MAX_CONCURRENCY: z.coerce.number().int().positive().default(1),
  /** How long a worker owns a job between checkpoints; keep it above the slowest step. */
  LEASE_SECONDS: z.coerce.number().positive().default(90),
  BACKOFF_BASE_SECONDS: z.coerce.number().min(0).default(2),
  BACKOFF_MAX_SECONDS: z.coerce.number().min(0).default(300),
});

export type ApiConfig = z.infer<typeof apiConfigSchema>;
export type WorkerConfig = z.infer<typeof workerConfigSchema>;

/** Parses `env` with `schema`, failing with the names of every missing or invalid variable. */
export function parseConfig<S extends z.ZodType>(
  schema: S,
  env: NodeJS.ProcessEnv = process.env,
): z.infer<S> {
  const parsed = schema.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues
      .map((issue) => `${issue.path.join('.')}: ${issue.message}`)
      .join('; ');
    throw new Error(`invalid configuration: ${problems}`);
  }
  return parsed.data;
}
