import { AppError, TransientError } from '../shared/errors';

/** Maps `items` with at most `limit` calls in flight; results in input order. */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await fn(items[index] as T, index);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  return results;
}

export function chunk<T>(items: readonly T[], size: number): T[][] {
  const chunks: T[][] = [];
  for (let i = 0; i < items.length; i += size) chunks.push(items.slice(i, i + size));
  return chunks;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Spaces calls so that at most `perSecond` start each second (no limit when undefined). */
export function rateLimiter(perSecond: number | undefined): () => Promise<void> {
  if (!perSecond) return async () => undefined;
  const interval = 1000 / perSecond;
  let nextAt = 0;
  return async () => {
    const now = Date.now();
    const at = Math.max(now, nextAt);
    nextAt = at + interval;
    if (at > now) await sleep(at - now);
  };
}

/**
 * Runs a balena call (balena-sdk retries only 429s; the AWS SDK retries its own calls),
 * retrying accidents (a dropped connection, a 5xx, a TransientError) with jittered exponential
 * backoff. Domain errors (AppError) are answers, not accidents, and are thrown at once.
 */
export async function withRetry<T>(
  fn: () => Promise<T>,
  options: { attempts?: number } = {},
): Promise<T> {
  const attempts = options.attempts ?? 5;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (error: unknown) {
      const final = error instanceof AppError && !(error instanceof TransientError);
      if (attempt >= attempts || final) throw error;
      await sleep(Math.min(2_000, 100 * 2 ** attempt) * (0.5 + Math.random()));
    }
  }
}
