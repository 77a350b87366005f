import { ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import { ScanCommand } from '@aws-sdk/lib-dynamodb';
import type { LocalStack } from '../../src/local/stack';
import { logger } from '../../src/shared/observability';
import { newUuid } from '../helpers/aws';
import {
  addDevices,
  api,
  fromBase64,
  keyMatchesCertificate,
  provisionAndWait,
  startTestStack,
  thingCertificates,
  waitForJob,
} from '../helpers/stack';

const FLEET = 'acme/sensors';

describe('device provisioning through the local stack', () => {
  let stack: LocalStack;

  beforeAll(async () => {
    stack = await startTestStack({ seed: { fleets: [{ slug: FLEET, services: ['main'] }] } });
  });
  afterAll(async () => {
    await stack.stop();
  });

  it('provisions a device that posts with its own key and delivers working credentials', async () => {
    const [device] = addDevices(stack, FLEET, 1);
    const posted = await api(stack, 'POST', '/v1/provision', {
      token: device!.deviceKey,
      body: { uuid: device!.uuid },
    });

    expect(posted.status).toBe(202);
    expect(posted.headers.get('location')).toBe(`/v1/jobs/${posted.json.jobId}`);
    expect(Number(posted.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(posted.json).toMatchObject({
      action: 'provision',
      uuid: device!.uuid,
      status: 'queued',
    });

    const job = await waitForJob(stack, String(posted.json.jobId), device!.deviceKey);
    expect(job).toMatchObject({ status: 'succeeded', attempts: 1 });
    const certificates = await thingCertificates(stack, device!.uuid);
    expect(certificates).toHaveLength(1);
    const [certificate] = certificates!;
    expect(certificate).toMatchObject({ status: 'ACTIVE', policies: [stack.policyName] });
    expect(job.result).toMatchObject({ thingName: device!.uuid, certificateId: certificate!.id });

    const variables = stack.sim!.deviceEnvVars(device!.uuid);
    expect(fromBase64(variables.AWS_CERT)).toBe(certificate!.pem);
    expect(keyMatchesCertificate(fromBase64(variables.AWS_PRIVATE_KEY), certificate!.pem)).toBe(
      true,
    );

    const state = await api(stack, 'GET', `/v1/devices/${device!.uuid}`, {
      token: device!.deviceKey,
    });
    expect(state.json).toMatchObject({
      state: 'provisioned',
      thingName: device!.uuid,
      certificateId: certificate!.id,
      lastJobId: posted.json.jobId,
    });
  });

  it('returns the same job to ten concurrent posts and issues one certificate', async () => {
    const [device] = addDevices(stack, FLEET, 1);
    const answers = await Promise.all(
      Array.from({ length: 10 }, () =>
        api(stack, 'POST', '/v1/provision', {
          token: device!.deviceKey,
          body: { uuid: device!.uuid },
        }),
      ),
    );
    const jobIds = new Set(answers.map((a) => a.json.jobId));
    expect(answers.every((a) => a.status === 202)).toBe(true);
    expect(jobIds.size).toBe(1);

    await waitForJob(stack, String([...jobIds][0]), device!.deviceKey);
    const jobs = await stack.aws.doc.send(
      new ScanCommand({
        TableName: stack.tableName,
        FilterExpression: '#type = :job AND #uuid = :uuid',
        ExpressionAttributeNames: { '#type': 'type', '#uuid': 'uuid' },
        ExpressionAttributeValues: { ':job': 'job', ':uuid': device!.uuid },
      }),
    );
    expect(jobs.Items).toHaveLength(1);
    expect(await thingCertificates(stack, device!.uuid)).toHaveLength(1);
  });

  it('answers 200 with the succeeded job when a provisioned device posts again and changes nothing', async () => {
    const [device] = addDevices(stack, FLEET, 1);
    const first = await provisionAndWait(stack, device!.uuid, device!.deviceKey);
    const before = await thingCertificates(stack, device!.uuid);

    const again = await api(stack, 'POST', '/v1/provision', {
      token: device!.deviceKey,
      body: { uuid: device!.uuid },
    });

    expect(again.status).toBe(200);
    expect(again.json).toMatchObject({ jobId: first.jobId, status: 'succeeded' });
    expect(await thingCertificates(stack, device!.uuid)).toEqual(before);
  });

  it('writes service-level variables when balenaService is given', async () => {
    const [device] = addDevices(stack, FLEET, 1);
    const job = await provisionAndWait(stack, device!.uuid, device!.deviceKey, {
      balenaService: 'main',
    });

    expect(job.status).toBe('succeeded');
    expect(Object.keys(stack.sim!.serviceEnvVars(device!.uuid, 'main')).sort()).toEqual([
      'AWS_CERT',
      'AWS_PRIVATE_KEY',
    ]);
    expect(stack.sim!.deviceEnvVars(device!.uuid)).toEqual({});
  });

  it('fails at once with service_not_found for a service the device does not run', async () => {
    const [device] = addDevices(stack, FLEET, 1);
    const job = await provisionAndWait(stack, device!.uuid, device!.deviceKey, {
      balenaService: 'nope',
    });

    expect(job).toMatchObject({
      status: 'failed',
      attempts: 1,
      error: { code: 'service_not_found' },
    });
    expect(stack.sim!.serviceEnvVars(device!.uuid, 'main')).toEqual({});
  });

  it('fails at once with device_not_found when the operator provisions an unknown uuid', async () => {
    const uuid = newUuid();
    const job = await provisionAndWait(stack, uuid, stack.operatorToken);

    expect(job).toMatchObject({
      status: 'failed',
      attempts: 1,
      error: { code: 'device_not_found' },
    });
    expect(await thingCertificates(stack, uuid)).toBeUndefined();
  });

  describe('authentication', () => {
    it('refuses a request without a key with 401 problem+json', async () => {
      const answer = await api(stack, 'POST', '/v1/provision', { body: { uuid: newUuid() } });
      expect(answer.status).toBe(401);
      expect(answer.headers.get('content-type')).toBe('application/problem+json');
      expect(answer.json).toMatchObject({ status: 401, code: 'unauthorized' });
    });

    it('refuses an unknown key with 401', async () => {
      const answer = await api(stack, 'POST', '/v1/provision', {
        token: 'not-a-key',
        body: { uuid: newUuid() },
      });
      expect(answer.status).toBe(401);
    });

    it("refuses a valid key of another device with 403 and reading another device's job", async () => {
      const [a, b] = addDevices(stack, FLEET, 2);
      const denied = await api(stack, 'POST', '/v1/provision', {
        token: a!.deviceKey,
        body: { uuid: b!.uuid },
      });
      expect(denied.status).toBe(403);
      expect(denied.json.code).toBe('forbidden');

      const posted = await api(stack, 'POST', '/v1/provision', {
        token: b!.deviceKey,
        body: { uuid: b!.uuid },
      });
      const peek = await api(stack, 'GET', `/v1/jobs/${posted.json.jobId}`, {
        token: a!.deviceKey,
      });
      expect(peek.status).toBe(403);
      const operator = await api(stack, 'GET', `/v1/jobs/${posted.json.jobId}`, {
        token: stack.operatorToken,
      });
      expect(operator.status).toBe(200);
    });
  });

  describe('request validation', () => {
    it.each([
      ['malformed JSON', '{"uuid":', 400, 'malformed_json'],
      ['an invalid uuid', JSON.stringify({ uuid: 'xyz' }), 400, 'invalid_uuid'],
      [
        'an unknown field',
        JSON.stringify({ uuid: 'a'.repeat(32), extra: 1 }),
        400,
        'invalid_request',
      ],
      [
        'a body over 64 KiB',
        JSON.stringify({ uuid: 'a'.repeat(32), pad: 'x'.repeat(70_000) }),
        413,
        'body_too_large',
      ],
    ])('answers %s with a problem', async (_name, rawBody, status, code) => {
      const answer = await api(stack, 'POST', '/v1/provision', {
        token: stack.operatorToken,
        rawBody,
      });
      expect(answer.status).toBe(status);
      expect(answer.json).toMatchObject({ status, code });
      expect(typeof answer.json.detail).toBe('string');
    });

    it('answers 404 for an unknown route and 405 with Allow for a wrong method', async () => {
      const missing = await api(stack, 'GET', '/v2/anything', { token: stack.operatorToken });
      expect(missing.status).toBe(404);
      expect(missing.json.code).toBe('not_found');

      const wrong = await api(stack, 'PUT', '/v1/provision', { token: stack.operatorToken });
      expect(wrong.status).toBe(405);
      expect(wrong.headers.get('allow')).toBe('POST');
    });

    it('refuses a wait outside 0..25 seconds', async () => {
      const answer = await api(
        stack,
        'GET',
        `/v1/jobs/${'0'.repeat(8)}-0000-4000-8000-${'0'.repeat(12)}?wait=60`,
        {
          token: stack.operatorToken,
        },
      );
      expect(answer.status).toBe(400);
      expect(answer.json.code).toBe('invalid_wait');
    });
  });

  describe('long polling', () => {
    it('holds the request until the job ends, then answers before the wait runs out', async () => {
      const [device] = addDevices(stack, FLEET, 1);
      const posted = await api(stack, 'POST', '/v1/provision', {
        token: device!.deviceKey,
        body: { uuid: device!.uuid },
      });
      const started = Date.now();
      const answer = await api(stack, 'GET', `/v1/jobs/${posted.json.jobId}?wait=25`, {
        token: device!.deviceKey,
      });
      expect(answer.json.status).toBe('succeeded');
      expect(Date.now() - started).toBeLessThan(20_000);
    });
  });

  describe('the legacy route used by devices in the field', () => {
    it('answers 201 "device created", then "thing already exists" as the device client expects', async () => {
      const [device] = addDevices(stack, FLEET, 1);
      const body = JSON.stringify({ uuid: device!.uuid, balena_service: 'main' });
      const first = await fetch(`${stack.apiUrl}/provision`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache' },
        body,
      });
      expect(first.status).toBe(201);
      expect(await first.text()).toBe('device created');
      expect(Object.keys(stack.sim!.serviceEnvVars(device!.uuid, 'main'))).toContain('AWS_CERT');

      const second = await fetch(`${stack.apiUrl}/provision`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body,
      });
      expect(second.ok).toBe(false);
      expect(await second.text()).toBe('thing already exists');
    });

    it('answers a 4xx plain-text message for a device balena does not know', async () => {
      const answer = await fetch(`${stack.apiUrl}/provision`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ uuid: newUuid() }),
      });
      expect(answer.status).toBe(400);
      expect(answer.headers.get('content-type')).toContain('text/plain');
      expect(await answer.text()).toMatch(/no device/);
    });

    it('refuses an unauthenticated legacy DELETE', async () => {
      const [device] = addDevices(stack, FLEET, 1);
      const answer = await fetch(`${stack.apiUrl}/provision`, {
        method: 'DELETE',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ uuid: device!.uuid }),
      });
      expect(answer.status).toBe(401);
    });
  });

  it('never lets a private key reach a log line, the table, the queue or a response', async () => {
    const [device] = addDevices(stack, FLEET, 1);
    const logged: string[] = [];
    const capture = (stream: NodeJS.WriteStream) =>
      jest.spyOn(stream, 'write').mockImplementation((chunk: string | Uint8Array) => {
        logged.push(String(chunk));
        return true;
      });
    const spies = [capture(process.stdout), capture(process.stderr)];
    logger.setLogLevel('DEBUG');
    // A failed variable write makes the worker log the failure and retry with a fresh key.
    stack.sim!.addFault({
      kind: 'status',
      status: 500,
      count: 1,
      route: 'device_environment_variable',
    });
    let job: Record<string, unknown>;
    try {
      job = await provisionAndWait(stack, device!.uuid, device!.deviceKey);
    } finally {
      logger.setLogLevel('ERROR');
      for (const spy of spies) spy.mockRestore();
    }
    expect(job.status).toBe('succeeded');
    expect(logged.join('')).toContain('job attempt failed');
    const key = fromBase64(stack.sim!.deviceEnvVars(device!.uuid).AWS_PRIVATE_KEY);
    expect(key).toContain('PRIVATE KEY');
    const keyBody = key
      .split('\n')
      .filter((l) => !l.startsWith('-----'))
      .join('');
    const encoded = stack.sim!.deviceEnvVars(device!.uuid).AWS_PRIVATE_KEY!;

    const items = await stack.aws.doc.send(new ScanCommand({ TableName: stack.tableName }));
    const table = JSON.stringify(items.Items);
    const messages = await stack.aws.sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: stack.queueUrl,
        MaxNumberOfMessages: 10,
        VisibilityTimeout: 0,
      }),
    );
    const everything = [
      logged.join(''),
      table,
      JSON.stringify(messages.Messages ?? []),
      JSON.stringify(job),
    ].join('\n');

    expect(everything).not.toContain('PRIVATE KEY');
    expect(everything).not.toContain(keyBody.slice(20, 80));
    expect(everything).not.toContain(encoded.slice(20, 80));
  });
});

describe('a stack with the legacy route switched off', () => {
  let stack: LocalStack;
  beforeAll(async () => {
    stack = await startTestStack({ legacyEnabled: false, startWorker: false });
  });
  afterAll(async () => {
    await stack.stop();
  });

  it('answers 404 on POST /provision', async () => {
    const answer = await api(stack, 'POST', '/provision', { body: { uuid: newUuid() } });
    expect(answer.status).toBe(404);
  });
});
