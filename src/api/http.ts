import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { HttpError } from '../shared/errors';
import { logger } from '../shared/observability';

export type HttpResponse = APIGatewayProxyStructuredResultV2 & {
  statusCode: number;
  headers: Record<string, string>;
};

export const MAX_BODY_BYTES = 64 * 1024;

export function json(
  statusCode: number,
  body: unknown,
  headers: Record<string, string> = {},
): HttpResponse {
  return {
    statusCode,
    headers: { 'Content-Type': 'application/json', 'Cache-Control': 'no-store', ...headers },
    body: JSON.stringify(body),
  };
}

export function text(
  statusCode: number,
  body: string,
  headers: Record<string, string> = {},
): HttpResponse {
  return {
    statusCode,
    headers: {
      'Content-Type': 'text/plain; charset=utf-8',
      'Cache-Control': 'no-store',
      ...headers,
    },
    body,
  };
}

/**
 * The one place errors become responses: RFC 9457 problem+json with a stable `code`.
 * Unknown errors answer a generic 500; their detail goes to the log only.
 */
export function problemResponse(error: unknown): HttpResponse {
  if (error instanceof HttpError) {
    return {
      statusCode: error.status,
      headers: {
        'Content-Type': 'application/problem+json',
        'Cache-Control': 'no-store',
        ...error.headers,
      },
      body: JSON.stringify({
        type: `https://github.com/balena-io-examples/aws-iot-provision/problems/${error.code}`,
        title: error.title,
        status: error.status,
        code: error.code,
        detail: error.message,
      }),
    };
  }
  logger.error('unhandled error', { error });
  return problemResponse(
    new HttpError(500, 'internal_error', 'an unexpected error occurred; it has been logged'),
  );
}

/** The raw body as UTF-8, refusing more than MAX_BODY_BYTES. */
export function readBody(event: APIGatewayProxyEventV2): string {
  const raw = event.body ?? '';
  const bytes = event.isBase64Encoded ? Buffer.from(raw, 'base64') : Buffer.from(raw, 'utf8');
  if (bytes.length > MAX_BODY_BYTES) {
    throw new HttpError(413, 'body_too_large', `the body exceeds ${MAX_BODY_BYTES} bytes`);
  }
  return bytes.toString('utf8');
}

/** Parses a JSON object body; 400 `malformed_json` otherwise. */
export function parseJsonBody(event: APIGatewayProxyEventV2): unknown {
  const body = readBody(event);
  if (body.trim() === '') return {};
  try {
    return JSON.parse(body);
  } catch {
    throw new HttpError(400, 'malformed_json', 'the body is not valid JSON');
  }
}

export function header(event: APIGatewayProxyEventV2, name: string): string | undefined {
  const wanted = name.toLowerCase();
  for (const [key, value] of Object.entries(event.headers ?? {})) {
    if (key.toLowerCase() === wanted) return value;
  }
  return undefined;
}
