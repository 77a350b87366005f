import type { IoTClient } from '@aws-sdk/client-iot';
import type { FinalizeRequestMiddleware, MetadataBearer } from '@smithy/types';

/**
 * AWS's documented default IoT Core control-plane quotas (requests/s per account and region).
 * CreateKeysAndCertificate, UpdateCertificate and DeleteCertificate have no current published
 * figure; 10/s is assumed for them.
 */
export const DEFAULT_IOT_RATES: Readonly<Record<string, number>> = {
  AttachPolicy: 15,
  CreateCertificateFromCsr: 15,
  CreateThing: 100,
  AttachThingPrincipal: 100,
  DescribeThing: 350,
  ListThingPrincipals: 10,
  CreateKeysAndCertificate: 10,
  UpdateCertificate: 10,
  DeleteCertificate: 10,
};

interface Bucket {
  /** The configured ceiling. */
  readonly ceiling: number;
  /** The current, adaptive rate: cut on throttling, regained slowly on success. */
  rate: number;
  /** When the next call may start (ms since epoch). */
  nextAt: number;
}

/**
 * Client-side pacing per API operation: calls are spaced at the operation's rate, the rate is
 * cut multiplicatively when the service still throttles and regained additively on success
 * (AIMD). Keeps the worker under IoT quotas instead of hammering and retrying.
 */
export class AdaptiveRateLimiter {
  private readonly buckets = new Map<string, Bucket>();

  constructor(
    rates: Readonly<Record<string, number>>,
    private readonly now: () => number = Date.now,
    private readonly sleep: (ms: number) => Promise<void> = (ms) =>
      new Promise((resolve) => setTimeout(resolve, ms)),
  ) {
    for (const [operation, rate] of Object.entries(rates)) {
      if (rate > 0) this.buckets.set(operation, { ceiling: rate, rate, nextAt: 0 });
    }
  }

  /** Waits for the operation's next slot; operations without a rate pass at once. */
  async acquire(operation: string): Promise<void> {
    const bucket = this.buckets.get(operation);
    if (!bucket) return;
    const now = this.now();
    const slot = Math.max(now, bucket.nextAt);
    bucket.nextAt = slot + 1000 / bucket.rate;
    if (slot > now) await this.sleep(slot - now);
  }

  onThrottled(operation: string): void {
    const bucket = this.buckets.get(operation);
    if (bucket) bucket.rate = Math.max(bucket.ceiling * 0.1, bucket.rate * 0.7);
  }

  onSuccess(operation: string): void {
    const bucket = this.buckets.get(operation);
    if (bucket) bucket.rate = Math.min(bucket.ceiling, bucket.rate + bucket.ceiling * 0.02);
  }

  currentRate(operation: string): number | undefined {
    return this.buckets.get(operation)?.rate;
  }
}

/** Paces every attempt (SDK retries included) of an IoT client through `limiter`. */
export function paceIotClient(client: IoTClient, limiter: AdaptiveRateLimiter): void {
  const pacing: FinalizeRequestMiddleware<object, MetadataBearer> =
    (next, context) => async (args) => {
      const operation = String(context.commandName ?? '').replace(/Command$/, '');
      await limiter.acquire(operation);
      try {
        const output = await next(args);
        limiter.onSuccess(operation);
        return output;
      } catch (error: unknown) {
        if (error instanceof Error && error.name === 'ThrottlingException') {
          limiter.onThrottled(operation);
        }
        throw error;
      }
    };
  client.middlewareStack.addRelativeTo(pacing, {
    relation: 'after',
    toMiddleware: 'retryMiddleware',
    name: 'iotPacing',
    override: true,
  });
}
