import { randomBytes } from 'node:crypto';
import { type AwsClients, makeAwsClients } from '../../src/shared/aws-clients';

export const REGION = 'us-east-1';

/** This jest worker's moto, started by the global setup. */
export function motoEndpoint(): string {
  const endpoints = (process.env.MOTO_ENDPOINTS ?? '').split(',').filter(Boolean);
  const worker = Number(process.env.JEST_WORKER_ID ?? '1');
  const endpoint = endpoints[(worker - 1) % Math.max(1, endpoints.length)];
  if (!endpoint) {
    throw new Error('MOTO_ENDPOINTS is not set: run the tests through jest (global setup)');
  }
  return endpoint;
}

/** Real AWS SDK clients pointed at moto, failing fast. */
export function motoClients(
  overrides: { iotEndpoint?: string; maxAttempts?: number } = {},
): AwsClients {
  return makeAwsClients({ region: REGION, endpoint: motoEndpoint(), maxAttempts: 1, ...overrides });
}

/** A name no other test uses, so tests share one moto without colliding. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${randomBytes(5).toString('hex')}`;
}

/** A fresh balena-style device uuid (32 hex). */
export function newUuid(): string {
  return randomBytes(16).toString('hex');
}
