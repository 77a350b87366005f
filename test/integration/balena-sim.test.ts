import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import type { BalenaSDK } from 'balena-sdk';
import { type BalenaSimulator, startBalenaSimulator } from '../../src/local/balena-sim';
import { balenaSdkFor, newDeviceUuid } from '../helpers/balena-sim';

const USER_KEY = 'user-key-0123456789';
const FLEET = 'acme/relays';
const SERVICES = ['main', 'cloud-relay'];

/**
 * balena-request throws BalenaRequestError from its own copy of balena-errors
 * (5.x, while `sdk.errors` is 4.x), so `instanceof sdk.errors.BalenaRequestError`
 * is false: match on `code`, as the SDK itself does.
 */
interface RequestError {
  name: string;
  code?: string;
  statusCode?: number;
  body?: unknown;
  responseHeaders?: { get(name: string): string | null };
}

/** The rejection of `promise`, which must reject. */
async function rejection(promise: Promise<unknown>): Promise<RequestError> {
  try {
    await promise;
  } catch (error: unknown) {
    return error as RequestError;
  }
  throw new Error('expected the promise to reject');
}

describe('balena simulator driven by the real balena-sdk', () => {
  let sim: BalenaSimulator;
  let sdk: BalenaSDK;

  beforeAll(async () => {
    sim = await startBalenaSimulator({
      port: 0,
      seed: {
        users: [{ username: 'operator', apiKey: USER_KEY }],
        fleets: [{ slug: FLEET, services: SERVICES }],
      },
    });
    sdk = await balenaSdkFor(sim.url, USER_KEY);
  });
  afterAll(() => sim.stop());
  afterEach(() => sim.clearFaults());

  /** A new device in the shared fleet. */
  const addDevice = (options: { isOnline?: boolean; deviceName?: string } = {}) =>
    sim.addDevice(FLEET, { uuid: newDeviceUuid(), ...options });

  describe('auth.whoami', () => {
    it('describes a user key as a user actor', async () => {
      const actor = await sdk.auth.whoami();
      expect(actor).toMatchObject({ actorType: 'user', username: 'operator' });
      expect(actor?.id).toEqual(expect.any(Number));
    });

    it('describes a device key as that device', async () => {
      const device = addDevice();
      const deviceSdk = await balenaSdkFor(sim.url, device.deviceKey);
      expect(await deviceSdk.auth.whoami()).toEqual({
        id: expect.any(Number),
        actorType: 'device',
        actorTypeId: device.id,
        uuid: device.uuid,
      });
    });

    it('answers undefined for an unknown key (401)', async () => {
      const stranger = await balenaSdkFor(sim.url, 'not-a-key');
      expect(await stranger.auth.whoami()).toBeUndefined();
      expect(sim.requests.at(-1)).toEqual({
        method: 'GET',
        path: '/actor/v1/whoami',
        status: 401,
      });
    });
  });

  describe('device.get', () => {
    it('returns a device by full uuid with its fleet link', async () => {
      const device = addDevice({ deviceName: 'relay-1', isOnline: false });
      const got = await sdk.models.device.get(device.uuid);
      expect(got).toMatchObject({
        id: device.id,
        uuid: device.uuid,
        device_name: 'relay-1',
        is_online: false,
        api_heartbeat_state: 'offline',
        belongs_to__application: { __id: expect.any(Number) },
      });
    });

    it('honours $select', async () => {
      const device = addDevice();
      expect(await sdk.models.device.get(device.uuid, { $select: ['id', 'uuid'] })).toEqual({
        id: device.id,
        uuid: device.uuid,
      });
    });

    it('accepts the key as an apikey query parameter, as balena does, and keeps it out of the log', async () => {
      const device = addDevice();
      const response = await fetch(
        `${sim.url}/v7/device(uuid='${device.uuid}')?$select=id&apikey=${USER_KEY}`,
      );
      expect(await response.json()).toEqual({ d: [{ id: device.id }] });
      expect(sim.requests.at(-1)).toEqual({
        method: 'GET',
        path: `/v7/device(uuid='${device.uuid}')?$select=id`,
        status: 200,
        actor: 'operator',
      });
    });

    it('throws BalenaDeviceNotFound for an unknown uuid', async () => {
      const error = await rejection(sdk.models.device.get(newDeviceUuid()));
      expect(error).toBeInstanceOf(sdk.errors.BalenaDeviceNotFound);
    });

    it('rejects requests without a known key with 401', async () => {
      const device = addDevice();
      const stranger = await balenaSdkFor(sim.url, 'not-a-key');
      const error = await rejection(stranger.models.device.get(device.uuid));
      expect(error.code).toBe('BalenaRequestError');
      expect(error.statusCode).toBe(401);
    });
  });

  describe('device.envVar', () => {
    it('creates a variable, then updates it through the 409 -> PATCH fallback', async () => {
      const { uuid, id } = addDevice();
      sim.clearRequests();
      await sdk.models.device.envVar.set(uuid, 'AWS_CERT', 'first');
      expect(sim.deviceEnvVars(uuid)).toEqual({ AWS_CERT: 'first' });

      await sdk.models.device.envVar.set(uuid, 'AWS_CERT', 'second');
      expect(sim.deviceEnvVars(uuid)).toEqual({ AWS_CERT: 'second' });
      expect(sim.requests.map((r) => `${r.status} ${r.method} ${r.path}`)).toEqual([
        `200 GET /v7/device(uuid='${uuid}')?$select=id`,
        '201 POST /v7/device_environment_variable',
        `200 GET /v7/device(uuid='${uuid}')?$select=id`,
        '409 POST /v7/device_environment_variable',
        `200 PATCH /v7/device_environment_variable?$filter=device eq ${id} and name eq 'AWS_CERT'`,
      ]);
    });

    it('reads a variable and answers undefined for a missing one', async () => {
      const { uuid } = addDevice();
      sim.setDeviceEnvVar(uuid, 'PLANTED', 'drift');
      expect(await sdk.models.device.envVar.get(uuid, 'PLANTED')).toBe('drift');
      expect(await sdk.models.device.envVar.get(uuid, 'MISSING')).toBeUndefined();
    });

    it('removes a variable, and removing a missing one succeeds', async () => {
      const { uuid } = addDevice();
      await sdk.models.device.envVar.set(uuid, 'A', '1');
      await sdk.models.device.envVar.set(uuid, 'B', '2');
      await sdk.models.device.envVar.remove(uuid, 'A');
      expect(sim.deviceEnvVars(uuid)).toEqual({ B: '2' });
      await expect(sdk.models.device.envVar.remove(uuid, 'A')).resolves.toBeUndefined();
      expect(sim.requests.at(-1)).toMatchObject({ method: 'DELETE', status: 200 });
    });

    it('keeps variables of different devices apart', async () => {
      const one = addDevice();
      const two = addDevice();
      await sdk.models.device.envVar.set(one.uuid, 'X', 'one');
      await sdk.models.device.envVar.set(two.uuid, 'X', 'two');
      expect(await sdk.models.device.envVar.get(one.uuid, 'X')).toBe('one');
      sim.removeDeviceEnvVar(two.uuid, 'X');
      expect(sim.deviceEnvVars(two.uuid)).toEqual({});
      expect(sim.deviceEnvVars(one.uuid)).toEqual({ X: 'one' });
    });
  });

  describe('device.getAllByApplication', () => {
    let online: { uuid: string };
    let offline: { uuid: string };
    beforeAll(() => {
      sim.seed({
        fleets: [
          {
            slug: 'acme/listing',
            devices: [
              { uuid: newDeviceUuid(), deviceName: 'b-online', isOnline: true },
              { uuid: newDeviceUuid(), deviceName: 'a-offline', isOnline: false },
            ],
          },
        ],
      });
    });

    it('lists every device of the fleet ordered by name', async () => {
      const devices = await sdk.models.device.getAllByApplication('acme/listing');
      expect(devices.map((d) => [d.device_name, d.is_online])).toEqual([
        ['a-offline', false],
        ['b-online', true],
      ]);
      [offline, online] = devices as unknown as [{ uuid: string }, { uuid: string }];
      expect(sim.requests.slice(-2).map((r) => r.path)).toEqual([
        "/v7/application?$filter=slug eq 'acme/listing' or uuid eq 'acme/listing'&$select=id",
        expect.stringMatching(
          /^\/v7\/device\?\$orderby=device_name asc&\$filter=belongs_to__application eq \d+$/,
        ),
      ]);
    });

    it('applies the caller $select and $filter', async () => {
      const devices = await sdk.models.device.getAllByApplication('acme/listing', {
        $select: ['uuid', 'device_name'],
        $filter: { is_online: true },
      });
      expect(devices).toEqual([{ uuid: online.uuid, device_name: 'b-online' }]);
      expect(devices).not.toContainEqual(expect.objectContaining({ uuid: offline.uuid }));
    });

    it('throws BalenaApplicationNotFound for an unknown fleet', async () => {
      const error = await rejection(sdk.models.device.getAllByApplication('acme/nope'));
      expect(error).toBeInstanceOf(sdk.errors.BalenaApplicationNotFound);
    });

    it('sees devices added after startup and forgets removed ones', async () => {
      const uuid = newDeviceUuid();
      sim.addDevice('acme/listing', { uuid, deviceName: 'c-new' });
      const names = async () =>
        (await sdk.models.device.getAllByApplication('acme/listing')).map((d) => d.device_name);
      expect(await names()).toContain('c-new');
      sim.removeDevice(uuid);
      expect(await names()).not.toContain('c-new');
      expect(() => sim.deviceEnvVars(uuid)).toThrow(/unknown device/);
    });
  });

  describe('device.serviceVar', () => {
    it('creates, updates through 409 -> PATCH, reads and removes a service variable', async () => {
      const { uuid } = addDevice();
      sim.clearRequests();
      await sdk.models.device.serviceVar.set(uuid, 'cloud-relay', 'AWS_CERT', 'v1');
      await sdk.models.device.serviceVar.set(uuid, 'cloud-relay', 'AWS_CERT', 'v2');
      expect(sim.serviceEnvVars(uuid, 'cloud-relay')).toEqual({ AWS_CERT: 'v2' });
      expect(sim.serviceEnvVars(uuid, 'main')).toEqual({});
      expect(sim.requests.map((r) => `${r.status} ${r.method}`)).toEqual([
        '200 GET',
        '201 POST',
        '200 GET',
        '409 POST',
        '200 PATCH',
      ]);
      expect(sim.requests[0]?.path).toBe(
        `/v7/service_install?$select=id&$filter=device/any(d:d/uuid eq '${uuid}') and installs__service/any(s:s/service_name eq 'cloud-relay')`,
      );

      expect(await sdk.models.device.serviceVar.get(uuid, 'cloud-relay', 'AWS_CERT')).toBe('v2');
      expect(await sdk.models.device.serviceVar.get(uuid, 'main', 'AWS_CERT')).toBeUndefined();

      await sdk.models.device.serviceVar.remove(uuid, 'cloud-relay', 'AWS_CERT');
      expect(sim.serviceEnvVars(uuid, 'cloud-relay')).toEqual({});
      await expect(
        sdk.models.device.serviceVar.remove(uuid, 'cloud-relay', 'AWS_CERT'),
      ).resolves.toBeUndefined();
    });

    it('throws BalenaServiceNotFound for a service the fleet does not have', async () => {
      const { uuid } = addDevice();
      const error = await rejection(sdk.models.device.serviceVar.set(uuid, 'nope', 'A', '1'));
      expect(error).toBeInstanceOf(sdk.errors.BalenaServiceNotFound);
    });

    it('installs services seeded later on existing devices', async () => {
      const { uuid } = addDevice();
      sim.seed({ fleets: [{ slug: FLEET, services: [...SERVICES, 'late'] }] });
      await sdk.models.device.serviceVar.set(uuid, 'late', 'A', '1');
      expect(sim.serviceEnvVars(uuid, 'late')).toEqual({ A: '1' });
    });
  });

  describe('device key scoping', () => {
    it('reads its own device but not another one', async () => {
      const own = addDevice();
      const other = addDevice();
      const deviceSdk = await balenaSdkFor(sim.url, own.deviceKey);
      expect(await deviceSdk.models.device.get(own.uuid, { $select: 'id' })).toEqual({
        id: own.id,
      });
      const error = await rejection(deviceSdk.models.device.get(other.uuid));
      expect(error).toBeInstanceOf(sdk.errors.BalenaDeviceNotFound);
      expect(sim.requests.at(-1)).toMatchObject({ status: 200, actor: `device:${own.uuid}` });
    });

    it('is refused with 401 when writing or deleting variables, even its own', async () => {
      const own = addDevice();
      sim.setDeviceEnvVar(own.uuid, 'KEEP', 'me');
      const deviceSdk = await balenaSdkFor(sim.url, own.deviceKey);

      const setError = await rejection(deviceSdk.models.device.envVar.set(own.uuid, 'A', '1'));
      expect(setError.code).toBe('BalenaRequestError');
      expect(setError.statusCode).toBe(401);
      const removeError = await rejection(deviceSdk.models.device.envVar.remove(own.uuid, 'KEEP'));
      expect(removeError.statusCode).toBe(401);
      const serviceError = await rejection(
        deviceSdk.models.device.serviceVar.set(own.uuid, 'main', 'A', '1'),
      );
      expect(serviceError.statusCode).toBe(401);
      expect(sim.deviceEnvVars(own.uuid)).toEqual({ KEEP: 'me' });
      expect(sim.serviceEnvVars(own.uuid, 'main')).toEqual({});
    });

    it('stops working once its device is removed', async () => {
      const device = addDevice();
      const deviceSdk = await balenaSdkFor(sim.url, device.deviceKey);
      sim.removeDevice(device.uuid);
      const error = await rejection(deviceSdk.models.device.get(device.uuid));
      expect(error.statusCode).toBe(401);
    });
  });

  describe('OData evaluation', () => {
    it('evaluates in, not, or, ne, $orderby desc, $top, $skip and nested $expand', async () => {
      sim.seed({
        fleets: [
          {
            slug: 'acme/odata',
            services: ['svc'],
            devices: ['d1', 'd2', 'd3', 'd4'].map((deviceName, i) => ({
              uuid: newDeviceUuid(),
              deviceName,
              isOnline: i % 2 === 0,
            })),
          },
        ],
      });
      const app = await sdk.models.application.get('acme/odata', { $select: 'id' });
      const page = await sdk.pine.get({
        resource: 'device',
        options: {
          $select: ['device_name'],
          $filter: {
            belongs_to__application: app.id,
            device_name: { $in: ['d1', 'd2', 'd3'] },
            $not: { device_name: 'd2' },
            $or: [{ is_online: true }, { device_name: { $ne: 'd1' } }],
          },
          $orderby: { device_name: 'desc' },
          $top: 1,
          $skip: 1,
          $expand: {
            belongs_to__application: { $select: ['slug'] },
            service_install: {
              $select: ['id'],
              $expand: { installs__service: { $select: ['service_name'] } },
            },
          },
        },
      });
      expect(page).toEqual([
        {
          device_name: 'd1',
          belongs_to__application: [{ slug: 'acme/odata' }],
          service_install: [
            { id: expect.any(Number), installs__service: [{ service_name: 'svc' }] },
          ],
        },
      ]);
    });

    it('answers 501 for a filter function it does not evaluate, not data', async () => {
      const error = await rejection(
        sdk.pine.get({
          resource: 'device',
          options: { $filter: { device_name: { $contains: 'd' } } },
        }),
      );
      expect(error.code).toBe('BalenaRequestError');
      expect(error.statusCode).toBe(501);
      expect(String(error.body)).toMatch(/does not support the filter function contains\(\)/);
      const raw = await rejection(
        sdk.pine.get({
          resource: 'device',
          options: { $filter: { $raw: "substringof('d', device_name)" } },
        }),
      );
      expect(raw.statusCode).toBe(501);
    });

    it('answers 501 for a resource it does not simulate and 400 for a malformed filter', async () => {
      const resource = await rejection(sdk.pine.get({ resource: 'organization' }));
      expect(resource.statusCode).toBe(501);
      const malformed = await rejection(
        sdk.pine.get({ resource: 'device', options: { $filter: { $raw: 'device_name eq' } } }),
      );
      expect(malformed.statusCode).toBe(400);
      const unknownField = await rejection(
        sdk.pine.get({ resource: 'device', options: { $filter: { $raw: 'no_such_field eq 1' } } }),
      );
      expect(unknownField.statusCode).toBe(400);
    });
  });

  describe('faults', () => {
    it('answers 429 with Retry-After, which the SDK throws and the log records', async () => {
      const { uuid } = addDevice();
      sim.addFault({ kind: 'status', status: 429, retryAfterSeconds: 7 });
      sim.clearRequests();
      const error = await rejection(sdk.models.device.get(uuid));
      expect(error.code).toBe('BalenaRequestError');
      expect(error.statusCode).toBe(429);
      expect(error.responseHeaders?.get('Retry-After')).toBe('7');
      expect(sim.requests).toEqual([
        { method: 'GET', path: `/v7/device(uuid='${uuid}')`, status: 429, actor: 'operator' },
      ]);
    });

    it('applies a counted fault to the next N requests only', async () => {
      const { uuid } = addDevice();
      sim.addFault({ kind: 'status', status: 503, count: 2 });
      sim.clearRequests();
      for (let i = 0; i < 3; i++) await sdk.models.device.get(uuid).catch(() => undefined);
      expect(sim.requests.map((r) => r.status)).toEqual([503, 503, 200]);
    });

    it('throws a 503 for a 503 fault', async () => {
      const { uuid } = addDevice();
      sim.addFault({ kind: 'status', status: 503, count: 1 });
      const error = await rejection(sdk.models.device.envVar.get(uuid, 'A'));
      expect(error.statusCode).toBe(503);
    });

    it('applies a fractional fault to roughly that share of requests', async () => {
      const { uuid } = addDevice();
      sim.addFault({ kind: 'status', status: 500, fraction: 0.3 });
      sim.clearRequests();
      for (let i = 0; i < 200; i++) {
        await sdk.models.device.get(uuid, { $select: 'id' }).catch(() => undefined);
      }
      const failed = sim.requests.filter((r) => r.status === 500).length;
      expect(sim.requests).toHaveLength(200);
      expect(failed).toBeGreaterThan(30);
      expect(failed).toBeLessThan(90);
    });

    it('scopes a fault by route substring and method', async () => {
      const { uuid } = addDevice();
      sim.addFault({ kind: 'status', status: 503, route: '/device_environment_variable' });
      await expect(sdk.models.device.get(uuid, { $select: 'id' })).resolves.toBeDefined();
      expect((await rejection(sdk.models.device.envVar.get(uuid, 'A'))).statusCode).toBe(503);
      sim.clearFaults();
      sim.addFault({ kind: 'status', status: 503, method: 'delete' });
      await expect(sdk.models.device.envVar.get(uuid, 'A')).resolves.toBeUndefined();
      expect((await rejection(sdk.models.device.envVar.remove(uuid, 'A'))).statusCode).toBe(503);
    });

    it('scopes a fault to devices by uuid in the URL and by id in filters and bodies', async () => {
      const target = addDevice();
      const bystander = addDevice();
      sim.addFault({ kind: 'status', status: 503, deviceUuids: [target.uuid] });
      await expect(sdk.models.device.get(bystander.uuid)).resolves.toMatchObject({
        uuid: bystander.uuid,
      });
      expect((await rejection(sdk.models.device.get(target.uuid))).statusCode).toBe(503);
      sim.clearFaults();

      // The device lookup passes (GET); the POST body carries only the numeric id.
      sim.addFault({ kind: 'status', status: 503, method: 'POST', deviceUuids: [target.uuid] });
      await sdk.models.device.envVar.set(bystander.uuid, 'A', '1');
      expect(
        (await rejection(sdk.models.device.envVar.set(target.uuid, 'A', '1'))).statusCode,
      ).toBe(503);
      // service_install ids in the body resolve to their device.
      expect(
        (await rejection(sdk.models.device.serviceVar.set(target.uuid, 'main', 'A', '1')))
          .statusCode,
      ).toBe(503);
      sim.clearFaults();

      // The PATCH fallback names the device only as `device eq <id>` in its filter.
      await sdk.models.device.envVar.set(target.uuid, 'A', '1');
      sim.addFault({ kind: 'status', status: 503, method: 'PATCH', deviceUuids: [target.uuid] });
      await sdk.models.device.envVar.set(bystander.uuid, 'A', '2');
      expect(
        (await rejection(sdk.models.device.envVar.set(target.uuid, 'A', '2'))).statusCode,
      ).toBe(503);
      expect(sim.deviceEnvVars(target.uuid)).toEqual({ A: '1' });
      expect(sim.deviceEnvVars(bystander.uuid)).toEqual({ A: '2' });
    });

    it('delays requests by the injected latency, then serves them', async () => {
      const { uuid } = addDevice();
      const timed = async () => {
        const start = performance.now();
        const device = await sdk.models.device.get(uuid, { $select: 'uuid' });
        return { device, elapsed: performance.now() - start };
      };
      const baseline = await timed();
      sim.addFault({ kind: 'latency', latencyMs: 300 });
      const delayed = await timed();
      expect(delayed.device).toEqual({ uuid });
      expect(delayed.elapsed).toBeGreaterThanOrEqual(250);
      expect(delayed.elapsed - baseline.elapsed).toBeGreaterThanOrEqual(200);
    });

    it('resets the connection, which the SDK surfaces as a network error', async () => {
      const { uuid } = addDevice();
      sim.addFault({ kind: 'reset', count: 1 });
      sim.clearRequests();
      const error = await rejection(sdk.models.device.get(uuid));
      expect(error.code).not.toBe('BalenaRequestError');
      expect(error.statusCode).toBeUndefined();
      expect(String(error)).toMatch(/fetch failed/);
      await expect(sdk.models.device.get(uuid)).resolves.toMatchObject({ uuid });
      expect(sim.requests.map((r) => r.status)).toEqual([0, 200]);
    });
  });

  describe('admin HTTP surface', () => {
    const admin = async (method: string, route: string, body?: unknown) => {
      const response = await fetch(`${sim.url}/__sim${route}`, {
        method,
        headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      return { status: response.status, json: (await response.json()) as unknown };
    };

    it('seeds fleets and devices that the SDK then sees', async () => {
      const uuid = newDeviceUuid();
      const seeded = await admin('POST', '/seed', {
        fleets: [{ slug: 'acme/admin', services: ['main'], devices: [{ uuid, deviceName: 'x' }] }],
      });
      expect(seeded.status).toBe(200);
      const devices = await sdk.models.device.getAllByApplication('acme/admin', {
        $select: ['uuid'],
      });
      expect(devices).toEqual([{ uuid }]);
      expect((await admin('POST', '/seed', { fleets: [{ slug: 42 }] })).status).toBe(400);
    });

    it('adds a device whose key works, reports its variables, and deletes it', async () => {
      const uuid = newDeviceUuid();
      const created = await admin('POST', '/devices', { fleet: FLEET, uuid });
      expect(created).toEqual({
        status: 201,
        json: { id: expect.any(Number), uuid, deviceKey: expect.stringMatching(/^[0-9a-f]{32}$/) },
      });
      const { deviceKey } = created.json as { deviceKey: string };
      const deviceSdk = await balenaSdkFor(sim.url, deviceKey);
      expect(await deviceSdk.auth.whoami()).toMatchObject({ actorType: 'device', uuid });

      await sdk.models.device.envVar.set(uuid, 'D', '1');
      await sdk.models.device.serviceVar.set(uuid, 'main', 'S', '2');
      expect(await admin('GET', `/devices/${uuid}/env`)).toEqual({
        status: 200,
        json: {
          device: { D: '1' },
          services: expect.objectContaining({ main: { S: '2' }, 'cloud-relay': {} }),
        },
      });

      expect((await admin('PUT', `/devices/${uuid}/env/PLANTED`, { value: 'drift' })).status).toBe(
        200,
      );
      expect(await sdk.models.device.envVar.get(uuid, 'PLANTED')).toBe('drift');
      expect((await admin('DELETE', `/devices/${uuid}/env/PLANTED`)).status).toBe(200);
      expect(sim.deviceEnvVars(uuid)).toEqual({ D: '1' });

      expect((await admin('DELETE', `/devices/${uuid}`)).status).toBe(200);
      expect(await rejection(sdk.models.device.get(uuid))).toBeInstanceOf(
        sdk.errors.BalenaDeviceNotFound,
      );
      expect((await admin('GET', `/devices/${uuid}/env`)).status).toBe(404);
      expect((await admin('POST', '/devices', { fleet: 'acme/none', uuid })).status).toBe(404);
    });

    it('adds and clears faults, and lists and clears requests', async () => {
      const { uuid } = addDevice();
      expect(
        (await admin('POST', '/faults', { kind: 'status', status: 503, route: `'${uuid}'` }))
          .status,
      ).toBe(201);
      expect((await rejection(sdk.models.device.get(uuid))).statusCode).toBe(503);
      expect((await admin('DELETE', '/faults')).status).toBe(200);
      await expect(sdk.models.device.get(uuid)).resolves.toMatchObject({ uuid });

      const logged = await admin('GET', '/requests');
      expect((logged.json as { status: number }[]).slice(-2).map((r) => r.status)).toEqual([
        503, 200,
      ]);
      expect((await admin('DELETE', '/requests')).status).toBe(200);
      expect((await admin('GET', '/requests')).json).toEqual([]);
      expect((await admin('POST', '/faults', { kind: 'explode' })).status).toBe(400);
    });
  });
});

describe('balena simulator main.ts', () => {
  /** Whether any process of the group led by `pid` is still running. */
  const groupAlive = (pid: number): boolean => {
    try {
      process.kill(-pid, 0);
      return true;
    } catch {
      return false;
    }
  };

  it('prints its URL, serves the seed, and stops on SIGTERM', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'balena-sim-'));
    const seedFile = path.join(dir, 'seed.json');
    writeFileSync(seedFile, JSON.stringify({ users: [{ username: 'cli', apiKey: 'cli-key' }] }));
    // Its own process group: npx does not relay SIGTERM, so the test signals the whole group.
    const child = spawn(
      'npx',
      ['tsx', 'src/local/balena-sim/main.ts', '--port', '0', '--seed', seedFile],
      {
        cwd: path.resolve(__dirname, '../..'),
        stdio: ['ignore', 'pipe', 'inherit'],
        detached: true,
      },
    );
    const pid = child.pid ?? 0;
    try {
      const first = await new Promise<string>((resolve, reject) => {
        createInterface({ input: child.stdout }).once('line', resolve);
        child.once('exit', (code) => reject(new Error(`main.ts exited early with ${code}`)));
      });
      const { url } = JSON.parse(first) as { url: string };
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      const cliSdk = await balenaSdkFor(url, 'cli-key');
      expect(await cliSdk.auth.whoami()).toMatchObject({ actorType: 'user', username: 'cli' });

      process.kill(-pid, 'SIGTERM');
      const deadline = Date.now() + 10_000;
      while (groupAlive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(groupAlive(pid)).toBe(false);
      await expect(fetch(`${url}/__sim/requests`)).rejects.toThrow();
    } finally {
      if (groupAlive(pid)) process.kill(-pid, 'SIGKILL');
    }
  });
});
