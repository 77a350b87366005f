import { createPublicKey, randomBytes, X509Certificate } from 'node:crypto';
import {
  DescribeCertificateCommand,
  ListAttachedPoliciesCommand,
  ListCertificatesCommand,
  ListPrincipalThingsCommand,
  ListThingPrincipalsCommand,
  ResourceNotFoundException,
} from '@aws-sdk/client-iot';
import type { SimDeviceSeed } from '../../src/local/balena-sim';
import { type LocalStack, type LocalStackOptions, startLocalStack } from '../../src/local/stack';
import {
  certificateIdFromArn,
  certificateKeyFingerprint,
  fingerprintSpki,
} from '../../src/shared/iot-registry';
import { motoEndpoint, newUuid } from './aws';

/**
 * Timings for tests that stop the worker on purpose: a stopped (hung) invocation is abandoned
 * after 3 s and its message comes back after 6 s; one job per invocation keeps healthy attempts
 * far inside the limit.
 */
export const CRASH_TIMINGS: LocalStackOptions = {
  invocationTimeoutMs: 3_000,
  leaseSeconds: 4.5,
  visibilityTimeoutSeconds: 6,
  batchSize: 1,
};

/** A local stack on this test worker's moto, with fast retry timings for tests. */
export function startTestStack(options: LocalStackOptions = {}): Promise<LocalStack> {
  return startLocalStack({
    awsEndpoint: motoEndpoint(),
    // Production ratios (invocation timeout < lease < visibility timeout), with room for a
    // loaded machine: an attempt is never cut short, and failures set their own retry delay.
    invocationTimeoutMs: 20_000,
    leaseSeconds: 25,
    visibilityTimeoutSeconds: 30,
    backoffBaseSeconds: 0,
    backoffMaxSeconds: 1,
    maxReceiveCount: 8,
    legacyWaitSeconds: 20,
    ...options,
  });
}

/** Adds `count` devices (with device keys) to a fleet of the stack's simulator. */
export function addDevices(
  stack: LocalStack,
  fleet: string,
  count: number,
): Required<SimDeviceSeed>[] {
  const sim = stack.sim;
  if (!sim) throw new Error('the stack has no in-process simulator');
  return Array.from({ length: count }, (_, i) => {
    const uuid = newUuid();
    const deviceKey = `dk-${randomBytes(12).toString('hex')}`;
    const created = sim.addDevice(fleet, {
      uuid,
      deviceKey,
      deviceName: `dev-${i}`,
      isOnline: true,
    });
    return { uuid, deviceKey, id: created.id, deviceName: `dev-${i}`, isOnline: true };
  });
}

export interface ApiAnswer {
  status: number;
  headers: Headers;
  text: string;
  json: Record<string, unknown>;
}

/** One HTTP call to the stack's API. */
export async function api(
  stack: LocalStack,
  method: string,
  path: string,
  options: { token?: string; body?: unknown; rawBody?: string } = {},
): Promise<ApiAnswer> {
  const headers: Record<string, string> = { 'Content-Type': 'application/json' };
  if (options.token) headers.Authorization = `Bearer ${options.token}`;
  const body =
    options.rawBody ?? (options.body === undefined ? undefined : JSON.stringify(options.body));
  const response = await fetch(`${stack.apiUrl}${path}`, { method, headers, body });
  const text = await response.text();
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    json = {};
  }
  return { status: response.status, headers: response.headers, text, json };
}

/** POSTs a provision request and long-polls the job to its end. */
export async function provisionAndWait(
  stack: LocalStack,
  uuid: string,
  token: string,
  body: Record<string, unknown> = {},
): Promise<Record<string, unknown>> {
  const posted = await api(stack, 'POST', '/v1/provision', { token, body: { uuid, ...body } });
  if (posted.status !== 202 && posted.status !== 200) {
    throw new Error(`provision answered ${posted.status}: ${posted.text}`);
  }
  return waitForJob(stack, String(posted.json.jobId), token);
}

export async function waitForJob(
  stack: LocalStack,
  jobId: string,
  token: string,
  timeoutMs = 45_000,
): Promise<Record<string, unknown>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const answer = await api(stack, 'GET', `/v1/jobs/${jobId}?wait=10`, { token });
    const status = answer.json.status;
    if (status === 'succeeded' || status === 'failed') return answer.json;
    if (Date.now() > deadline) throw new Error(`job ${jobId} still ${String(status)}`);
  }
}

export interface ThingCertificate {
  arn: string;
  id: string;
  status: string;
  pem: string;
  policies: string[];
}

/** The certificates attached to a thing, with status, PEM and policies (undefined: no thing). */
export async function thingCertificates(
  stack: LocalStack,
  thingName: string,
): Promise<ThingCertificate[] | undefined> {
  let principals: string[];
  try {
    const out = await stack.aws.iot.send(new ListThingPrincipalsCommand({ thingName }));
    principals = out.principals ?? [];
  } catch (error: unknown) {
    if (error instanceof Error && error.name === 'ResourceNotFoundException') return undefined;
    throw error;
  }
  return Promise.all(
    principals.map(async (arn) => {
      const id = certificateIdFromArn(arn);
      const described = await stack.aws.iot.send(
        new DescribeCertificateCommand({ certificateId: id }),
      );
      const policies = await stack.aws.iot.send(new ListAttachedPoliciesCommand({ target: arn }));
      return {
        arn,
        id,
        status: described.certificateDescription?.status ?? '',
        pem: described.certificateDescription?.certificatePem ?? '',
        policies: (policies.policies ?? []).map((p) => p.policyName ?? ''),
      };
    }),
  );
}

export function fromBase64(value: string | undefined): string {
  return Buffer.from(value ?? '', 'base64').toString('utf8');
}

/** True when `privateKeyPem` is the key of `certificatePem`. */
export function keyMatchesCertificate(privateKeyPem: string, certificatePem: string): boolean {
  const spki = createPublicKey(privateKeyPem).export({ type: 'spki', format: 'der' });
  return fingerprintSpki(spki) === certificateKeyFingerprint(certificatePem);
}

/**
 * Every certificate issued for these devices (subject CN = uuid) since `since`, and whether it is
 * attached to a thing: a crash must leave none behind unattached.
 */
export async function issuedCertificates(
  stack: LocalStack,
  uuids: readonly string[],
  since: Date,
): Promise<Array<{ uuid: string; id: string; attached: boolean }>> {
  const wanted = new Set(uuids);
  const out = await stack.aws.iot.send(new ListCertificatesCommand({}));
  const found: Array<{ uuid: string; id: string; attached: boolean }> = [];
  for (const summary of out.certificates ?? []) {
    if ((summary.creationDate?.getTime() ?? 0) < since.getTime() - 5_000) continue;
    const id = summary.certificateId as string;
    // Other tests share this moto and delete their certificates meanwhile.
    const pem = await stack.aws.iot
      .send(new DescribeCertificateCommand({ certificateId: id }))
      .then((d) => d.certificateDescription?.certificatePem)
      .catch((error: unknown) => {
        if (error instanceof ResourceNotFoundException) return undefined;
        throw error;
      });
    if (!pem) continue;
    const uuid = /CN=([0-9a-f]+)/.exec(new X509Certificate(pem).subject)?.[1];
    if (!uuid || !wanted.has(uuid)) continue;
    const things = await stack.aws.iot
      .send(new ListPrincipalThingsCommand({ principal: summary.certificateArn }))
      .catch((error: unknown) => {
        if (error instanceof ResourceNotFoundException) return undefined;
        throw error;
      });
    if (things) found.push({ uuid, id, attached: (things.things ?? []).length > 0 });
  }
  return found;
}
