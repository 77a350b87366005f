/** Retry pacing for transient failures. */
export interface BackoffPolicy {
  readonly baseSeconds: number;
  readonly maxSeconds: number;
}

/**
 * Exponential backoff with "equal jitter" for the `receiveCount`-th failure, never sooner than
 * a server's Retry-After. Returns whole seconds (SQS visibility granularity).
 */
export function backoffSeconds(
  policy: BackoffPolicy,
  receiveCount: number,
  retryAfterMs = 0,
  random: () => number = Math.random,
): number {
  const exponential = Math.min(
    policy.maxSeconds,
    policy.baseSeconds * 2 ** Math.max(0, receiveCount - 1),
  );
  const jittered = exponential / 2 + random() * (exponential / 2);
  return Math.min(policy.maxSeconds, Math.ceil(Math.max(jittered, retryAfterMs / 1000)));
}
