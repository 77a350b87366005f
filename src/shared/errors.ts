/** Base of every error this service raises on purpose. */
export class AppError extends Error {
  constructor(
    message: string,
    readonly code: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** An error the HTTP API answers with its own status and stable code. */
export class HttpError extends AppError {
  constructor(
    readonly status: number,
    code: string,
    message: string,
    readonly title = defaultTitle(status),
    options?: { cause?: unknown; headers?: Record<string, string> },
  ) {
    super(message, code, options);
    this.headers = options?.headers ?? {};
  }
  readonly headers: Record<string, string>;
}

export class ValidationError extends HttpError {
  constructor(code: string, message: string) {
    super(400, code, message, 'Bad Request');
  }
}

export class UnauthorizedError extends HttpError {
  constructor(message = 'a bearer token is required') {
    super(401, 'unauthorized', message, 'Unauthorized', {
      headers: { 'WWW-Authenticate': 'Bearer' },
    });
  }
}

export class ForbiddenError extends HttpError {
  constructor(message = 'this token may not act on this device') {
    super(403, 'forbidden', message, 'Forbidden');
  }
}

export class NotFoundError extends HttpError {
  constructor(code: string, message: string) {
    super(404, code, message, 'Not Found');
  }
}

/** Another job of a different action is active for the device. */
export class JobConflictError extends HttpError {
  constructor(
    message: string,
    readonly activeJobId: string,
  ) {
    super(409, 'job_conflict', message, 'Conflict');
  }
}

/** The queue refused the message; the job was failed so nothing is left stuck. */
export class QueueUnavailableError extends HttpError {
  constructor(options?: { cause?: unknown }) {
    super(503, 'queue_unavailable', 'the job could not be queued; try again shortly', undefined, {
      ...options,
      headers: { 'Retry-After': '5' },
    });
  }
}

/** A step failed for good: the job fails at once with this code. */
export class PermanentError extends AppError {}

/** A step failed for now: the message is retried with backoff. */
export class TransientError extends AppError {
  constructor(
    message: string,
    code: string,
    readonly retryAfterMs?: number,
    options?: { cause?: unknown },
  ) {
    super(message, code, options);
  }
}

/** Another worker holds the job's lease (a duplicate delivery); retry after it expires. */
export class LeaseHeldError extends TransientError {
  constructor(retryAfterMs: number) {
    super('another worker is processing this job', 'lease_held', retryAfterMs);
  }
}

/** The message cannot be processed at all (malformed body, unknown job). */
export class PoisonMessageError extends AppError {}

function defaultTitle(status: number): string {
  const titles: Record<number, string> = {
    400: 'Bad Request',
    401: 'Unauthorized',
    403: 'Forbidden',
    404: 'Not Found',
    405: 'Method Not Allowed',
    409: 'Conflict',
    413: 'Content Too Large',
    415: 'Unsupported Media Type',
    500: 'Internal Server Error',
    503: 'Service Unavailable',
  };
  return titles[status] ?? 'Error';
}
