import { PermanentError, TransientError } from './errors';

/** AWS error names that mean "try again later". */
const TRANSIENT_NAMES = new Set([
  'ThrottlingException',
  'Throttling',
  'TooManyRequestsException',
  'ServiceUnavailableException',
  'ServiceUnavailable',
  'InternalFailureException',
  'InternalFailure',
  'InternalServerError',
  'RequestTimeout',
  'RequestTimeoutException',
  'TimeoutError',
  'ProvisionedThroughputExceededException',
  'RequestLimitExceeded',
  'TransactionConflictException',
]);

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EAI_AGAIN',
  'ENOTFOUND',
  'UND_ERR_SOCKET',
]);

interface AwsLikeError {
  name?: string;
  code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
  $retryable?: unknown;
}

/** True for errors worth retrying: throttling, 5xx, timeouts, network failures. */
export function isTransientAwsError(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const e = error as AwsLikeError;
  if (e.name && TRANSIENT_NAMES.has(e.name)) return true;
  if (e.code && NETWORK_CODES.has(e.code)) return true;
  if (e.$retryable) return true;
  const status = e.$metadata?.httpStatusCode;
  if (status !== undefined && (status >= 500 || status === 429)) return true;
  // An emulator's HTML 500 page surfaces as a parse error without metadata.
  return error.name === 'SyntaxError' || /socket hang up|network|timed? ?out/i.test(error.message);
}

/**
 * Maps an AWS SDK error to the domain: transient errors retry with backoff, anything else is
 * permanent and fails the job with a stable code.
 */
export function classifyAwsError(error: unknown, operation: string): Error {
  if (error instanceof TransientError || error instanceof PermanentError) return error;
  const name = error instanceof Error ? error.name : 'UnknownError';
  const message = error instanceof Error ? error.message : String(error);
  if (isTransientAwsError(error)) {
    const code = /thrott|toomany|limitexceeded/i.test(name) ? 'aws_throttled' : 'aws_unavailable';
    return new TransientError(`${operation} failed: ${name}: ${message}`, code, undefined, {
      cause: error,
    });
  }
  return new PermanentError(`${operation} failed: ${name}: ${message}`, 'aws_request_rejected', {
    cause: error,
  });
}
