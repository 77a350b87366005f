import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import { ReceiveMessageCommand, SendMessageCommand } from '@aws-sdk/client-sqs';
import * as x509 from '@peculiar/x509';
import type { Context } from 'aws-lambda';
import type { LocalStack } from '../../src/local/stack';
import { generateDeviceCredentials } from '../../src/shared/csr';
import { DynamoDbJobStore } from '../../src/shared/job-store';
import { newUuid } from '../helpers/aws';
import { sqsRecord } from '../helpers/sqs';
import {
  addDevices,
  api,
  fromBase64,
  issuedCertificates,
  keyMatchesCertificate,
  provisionAndWait,
  startTestStack,
  thingCertificates,
  waitForJob,
} from '../helpers/stack';

const FLEET = 'life/cycle';

describe('device lifecycle', () => {
  let stack: LocalStack;
  beforeAll(async () => {
    stack = await startTestStack({
      seed: { fleets: [{ slug: FLEET, services: ['main'] }] },
      maxReceiveCount: 2,
    });
  });
  afterAll(async () => {
    await stack.stop();
  });

  describe('CSR mode', () => {
    it('issues a certificate for the key in the CSR, delivers only AWS_CERT and removes a stale key', async () => {
      const [device] = addDevices(stack, FLEET, 1);
      stack.sim!.setDeviceEnvVar(device!.uuid, 'AWS_PRIVATE_KEY', 'c3RhbGU=');
      const own = await generateDeviceCredentials(device!.uuid, 'ec-p256');

      const job = await provisionAndWait(stack, device!.uuid, device!.deviceKey, {
        csr: own.csrPem,
      });

      expect(job.status).toBe('succeeded');
      const result = job.result as Record<string, unknown>;
      const [certificate] = (await thingCertificates(stack, device!.uuid))!;
      expect(result.certificatePem).toBe(certificate!.pem);
      expect(keyMatchesCertificate(own.privateKeyPem, certificate!.pem)).toBe(true);
      const variables = stack.sim!.deviceEnvVars(device!.uuid);
      expect(Object.keys(variables)).toEqual(['AWS_CERT']);
      expect(fromBase64(variables.AWS_CERT)).toBe(certificate!.pem);
    });

    it.each([
      [
        'not a CSR',
        () =>
          Promise.resolve(
            '-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----',
          ),
      ],
      [
        'a CSR for another device',
        async () => (await generateDeviceCredentials(newUuid(), 'ec-p256')).csrPem,
      ],
      [
        'a CSR with a 1024-bit RSA key',
        () =>
          csrWithKey({
            name: 'RSASSA-PKCS1-v1_5',
            modulusLength: 1024,
            publicExponent: new Uint8Array([1, 0, 1]),
            hash: 'SHA-256',
          }),
      ],
      [
        'a CSR whose signature does not verify',
        async () => tamper((await generateDeviceCredentials('x', 'ec-p256')).csrPem),
      ],
    ])('refuses %s with 400 invalid_csr', async (_name, makeCsr) => {
      const [device] = addDevices(stack, FLEET, 1);
      const answer = await api(stack, 'POST', '/v1/provision', {
        token: device!.deviceKey,
        body: { uuid: device!.uuid, csr: await makeCsr() },
      });
      expect(answer.status).toBe(400);
      expect(answer.json.code).toBe('invalid_csr');
    });
  });

  describe('rotation', () => {
    it('rotates the credentials where they were delivered: the service the device was provisioned for', async () => {
      const [device] = addDevices(stack, FLEET, 1);
      await provisionAndWait(stack, device!.uuid, device!.deviceKey, { balenaService: 'main' });
      const [before] = (await thingCertificates(stack, device!.uuid))!;

      const job = await provisionAndWait(stack, device!.uuid, device!.deviceKey, { rotate: true });

      expect(job).toMatchObject({ status: 'succeeded', balenaService: 'main', rotate: true });
      const certificates = (await thingCertificates(stack, device!.uuid))!;
      expect(certificates.map((c) => c.id)).not.toContain(before!.id);
      expect(certificates).toHaveLength(1);
      const variables = stack.sim!.serviceEnvVars(device!.uuid, 'main');
      expect(fromBase64(variables.AWS_CERT)).toBe(certificates[0]!.pem);
      expect(
        keyMatchesCertificate(fromBase64(variables.AWS_PRIVATE_KEY), certificates[0]!.pem),
      ).toBe(true);
      expect(stack.sim!.deviceEnvVars(device!.uuid)).toEqual({});
    });
  });

  describe('deprovision', () => {
    it('answers the legacy DELETE with "device deleted" for the device\'s own key and removes everything', async () => {
      const [device] = addDevices(stack, FLEET, 1);
      await provisionAndWait(stack, device!.uuid, device!.deviceKey, { balenaService: 'main' });

      const answer = await fetch(`${stack.apiUrl}/provision`, {
        method: 'DELETE',
        headers: {
          'Content-Type': 'application/json',
          Authorization: `Bearer ${device!.deviceKey}`,
        },
        body: JSON.stringify({ uuid: device!.uuid, balena_service: 'main' }),
      });

      expect(answer.status).toBe(200);
      expect(await answer.text()).toBe('device deleted');
      expect(await thingCertificates(stack, device!.uuid)).toBeUndefined();
      expect(stack.sim!.serviceEnvVars(device!.uuid, 'main')).toEqual({});
      expect(await issuedCertificates(stack, [device!.uuid], new Date(0))).toEqual([]);
    });

    it('cleans up AWS when the device no longer exists in balena', async () => {
      const [device] = addDevices(stack, FLEET, 1);
      await provisionAndWait(stack, device!.uuid, device!.deviceKey);
      stack.sim!.removeDevice(device!.uuid);

      const answer = await api(stack, 'DELETE', `/v1/devices/${device!.uuid}`, {
        token: stack.operatorToken,
      });
      const job = await waitForJob(stack, String(answer.json.jobId), stack.operatorToken);

      expect(job).toMatchObject({ status: 'succeeded', result: { certificatesRetired: 1 } });
      expect(await thingCertificates(stack, device!.uuid)).toBeUndefined();
      const state = await api(stack, 'GET', `/v1/devices/${device!.uuid}`, {
        token: stack.operatorToken,
      });
      expect(state.json).toMatchObject({
        state: 'deprovisioned',
        thingName: null,
        certificateId: null,
      });
    });
  });

  describe('retries and the dead-letter queue', () => {
    it('fails the job with retries_exhausted, parks the message in the DLQ, and a replay resumes it', async () => {
      const [device] = addDevices(stack, FLEET, 1);
      stack.sim!.addFault({ kind: 'status', status: 503, route: 'device_environment_variable' });
      try {
        const posted = await api(stack, 'POST', '/v1/provision', {
          token: device!.deviceKey,
          body: { uuid: device!.uuid },
        });
        const failed = await waitForJob(stack, String(posted.json.jobId), device!.deviceKey);
        expect(failed).toMatchObject({
          status: 'failed',
          attempts: 2,
          error: { code: 'retries_exhausted' },
        });
        expect(String((failed.error as { message: string }).message)).toContain(
          'balena_unavailable',
        );

        const parked = await receiveAll(stack, stack.dlqUrl, 15_000, (body) =>
          body.includes(String(posted.json.jobId)),
        );
        expect(parked).toHaveLength(1);

        stack.sim!.clearFaults();
        const store = new DynamoDbJobStore(stack.aws.doc, stack.tableName, { ttlDays: 1 });
        expect(await store.requeue(String(posted.json.jobId))).toBe(true);
        await stack.aws.sqs.send(
          new SendMessageCommand({ QueueUrl: stack.queueUrl, MessageBody: parked[0]! }),
        );
        const replayed = await waitForJob(stack, String(posted.json.jobId), device!.deviceKey);

        expect(replayed.status).toBe('succeeded');
        expect(Number(replayed.attempts)).toBe(3);
        const certificates = await issuedCertificates(stack, [device!.uuid], new Date(0));
        expect(certificates.filter((c) => c.attached)).toHaveLength(1);
        expect(certificates.filter((c) => !c.attached)).toEqual([]);
      } finally {
        stack.sim!.clearFaults();
      }
    });

    it('reports poison messages as batch failures without failing the rest of the batch', async () => {
      const [device] = addDevices(stack, FLEET, 1);
      await stack.poller.stop();
      try {
        const posted = await api(stack, 'POST', '/v1/provision', {
          token: stack.operatorToken,
          body: { uuid: device!.uuid },
        });
        const [good] = await receiveAll(stack, stack.queueUrl, 5_000, (body) =>
          body.includes(String(posted.json.jobId)),
        );
        const records = [
          sqsRecord('bad-json', 'not json'),
          sqsRecord(
            'unknown-job',
            JSON.stringify({ jobId: '00000000-0000-4000-8000-000000000000' }),
          ),
          sqsRecord('good', good!),
        ];

        const response = await stack.workerHandler({ Records: records }, {} as Context);

        expect(response.batchItemFailures.map((f) => f.itemIdentifier).sort()).toEqual([
          'bad-json',
          'unknown-job',
        ]);
        const job = await waitForJob(stack, String(posted.json.jobId), stack.operatorToken, 2_000);
        expect(job.status).toBe('succeeded');
      } finally {
        await stack.poller.start();
      }
    });

    it('moves a malformed message to the DLQ after maxReceiveCount receives', async () => {
      const marker = `poison-${newUuid()}`;
      await stack.aws.sqs.send(
        new SendMessageCommand({ QueueUrl: stack.queueUrl, MessageBody: marker }),
      );
      const parked = await receiveAll(stack, stack.dlqUrl, 20_000, (body) => body === marker);
      expect(parked).toEqual([marker]);
    });
  });
});

async function csrWithKey(algorithm: webcrypto.RsaHashedKeyGenParams): Promise<string> {
  x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
  const keys = (await webcrypto.subtle.generateKey(algorithm, true, [
    'sign',
    'verify',
  ])) as webcrypto.CryptoKeyPair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    keys: keys as Parameters<typeof x509.Pkcs10CertificateRequestGenerator.create>[0]['keys'],
    signingAlgorithm: algorithm,
  });
  return csr.toString('pem');
}

/** Flips a byte near the end of the DER (inside the signature). */
function tamper(pem: string): string {
  const der = Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
  der[der.length - 5] = (der[der.length - 5] ?? 0) ^ 0xff;
  return `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----`;
}

/** Receives (and deletes) the messages of a queue that match, until one is found or time runs out. */
async function receiveAll(
  stack: LocalStack,
  queueUrl: string,
  timeoutMs: number,
  matches: (body: string) => boolean,
): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  const found: string[] = [];
  while (found.length === 0 && Date.now() < deadline) {
    const out = await stack.aws.sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: queueUrl,
        MaxNumberOfMessages: 10,
        WaitTimeSeconds: 1,
        VisibilityTimeout: 30,
      }),
    );
    for (const message of out.Messages ?? []) {
      if (matches(message.Body ?? '')) found.push(message.Body ?? '');
    }
  }
  return found;
}
