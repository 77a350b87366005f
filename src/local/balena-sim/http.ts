/** An error that becomes an HTTP response with this status and a plain-text body. */
export class SimHttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'SimHttpError';
  }
}

/** balena answers 401 with this body for missing keys and for writes the actor may not make. */
export const unauthorized = (): SimHttpError => new SimHttpError(401, 'Unauthorized');

/** An OData feature the simulator does not evaluate: refuse rather than answer wrong data. */
export const notImplemented = (what: string): SimHttpError =>
  new SimHttpError(501, `balena simulator does not support ${what}`);

/** What a route handler answers: a string is sent as text/plain, anything else as JSON. */
export interface SimReply {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}

/** Parses a JSON request body; undefined when empty, a 400 when malformed. */
export function parseJsonBody(raw: string): unknown {
  if (raw.trim() === '') return undefined;
  try {
    return JSON.parse(raw);
  } catch {
    throw new SimHttpError(400, 'The body is not valid JSON');
  }
}
