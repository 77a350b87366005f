import { randomBytes } from 'node:crypto';
import { SimHttpError } from './http';
import { type ResourceName, type Row, SCHEMA } from './schema';
import type { BalenaSimSeed, SimDeviceSeed, SimFleetSeed, SimUserSeed } from './types';

/** Who a request's key belongs to. `actorId` is balena's actor id, distinct from the user/device id. */
export type Actor =
  | { kind: 'user'; actorId: number; userId: number; username: string }
  | { kind: 'device'; actorId: number; deviceId: number; uuid: string };

/** The rows one actor may see; every read and every link target goes through it. */
export interface DataScope {
  rows(resource: ResourceName): Row[];
  row(resource: ResourceName, id: unknown): Row | undefined;
}

/** Distinct id ranges make a client that mixes up ids (a fleet id used as a device id) fail visibly. */
const FIRST_ID: Record<ResourceName, number> = {
  application: 101,
  service: 201,
  device: 1001,
  service_install: 5001,
  device_environment_variable: 10001,
  device_service_environment_variable: 20001,
};

const hex32 = (): string => randomBytes(16).toString('hex');
const now = (): string => new Date().toISOString();

/** In-memory balena data: fleets, services, devices, installs, variables, keys. */
export class SimStore {
  private readonly tables = new Map<ResourceName, Map<number, Row>>(
    Object.keys(SCHEMA).map((name) => [name as ResourceName, new Map()]),
  );
  private readonly nextId = new Map<ResourceName, number>(
    Object.entries(FIRST_ID) as [ResourceName, number][],
  );
  private readonly users = new Map<string, Actor & { kind: 'user' }>();
  private readonly deviceKeys = new Map<string, number>();
  private readonly deviceActors = new Map<number, { key: string; actorId: number }>();
  private nextActorId = 50001;
  private nextUserId = 1;

  seed(seed: BalenaSimSeed): void {
    for (const user of seed.users ?? []) this.addUser(user);
    for (const fleet of seed.fleets ?? []) this.addFleet(fleet);
  }

  /** A known username gets `apiKey` as one more key, as balena users may hold several. */
  addUser(user: SimUserSeed): void {
    if (this.deviceKeys.has(user.apiKey)) throw new SimHttpError(409, 'API key already in use');
    const existing = [...this.users.values()].find((u) => u.username === user.username);
    this.users.set(
      user.apiKey,
      existing ?? {
        kind: 'user',
        actorId: this.nextActorId++,
        userId: this.nextUserId++,
        username: user.username,
      },
    );
  }

  /** Creates the fleet when its slug is new, then adds missing services and devices. */
  addFleet(fleet: SimFleetSeed): Row {
    let app = this.findBy('application', 'slug', fleet.slug);
    if (!app) {
      const appName = fleet.slug.includes('/')
        ? fleet.slug.slice(fleet.slug.indexOf('/') + 1)
        : fleet.slug;
      app = this.insert('application', {
        id: fleet.id,
        app_name: appName,
        slug: fleet.slug,
        uuid: hex32(),
        is_of__class: 'fleet',
        is_host: false,
        is_archived: false,
        is_public: false,
        should_track_latest_release: true,
      });
    }
    for (const serviceName of fleet.services ?? []) {
      const exists = [...this.table('service').values()].some(
        (s) => s.application === app.id && s.service_name === serviceName,
      );
      if (exists) continue;
      const service = this.insert('service', { application: app.id, service_name: serviceName });
      for (const device of this.table('device').values()) {
        if (device.belongs_to__application === app.id) {
          this.insert('service_install', { device: device.id, installs__service: service.id });
        }
      }
    }
    for (const device of fleet.devices ?? []) {
      if (!this.findBy('device', 'uuid', device.uuid)) this.addDevice(fleet.slug, device);
    }
    return app;
  }

  addDevice(
    fleetSlug: string,
    seed: SimDeviceSeed,
  ): { id: number; uuid: string; deviceKey: string } {
    const app = this.findBy('application', 'slug', fleetSlug);
    if (!app) throw new SimHttpError(404, `unknown fleet ${fleetSlug}`);
    if (this.findBy('device', 'uuid', seed.uuid)) {
      throw new SimHttpError(409, `device ${seed.uuid} already exists`);
    }
    const deviceKey = seed.deviceKey ?? hex32();
    if (this.deviceKeys.has(deviceKey) || this.users.has(deviceKey)) {
      throw new SimHttpError(409, 'device key already in use');
    }
    const isOnline = seed.isOnline ?? true;
    const createdAt = now();
    const device = this.insert('device', {
      id: seed.id,
      uuid: seed.uuid,
      device_name: seed.deviceName ?? `device-${seed.uuid.slice(0, 7)}`,
      note: null,
      is_online: isOnline,
      api_heartbeat_state: isOnline ? 'online' : 'offline',
      last_connectivity_event: createdAt,
      is_connected_to_vpn: isOnline,
      is_active: true,
      is_frozen: false,
      status: 'Idle',
      os_version: 'balenaOS 6.0.0',
      os_variant: 'prod',
      supervisor_version: '16.0.0',
      ip_address: null,
      mac_address: null,
      public_address: null,
      is_web_accessible: false,
      modified_at: createdAt,
      belongs_to__application: app.id,
    });
    for (const service of this.table('service').values()) {
      if (service.application === app.id) {
        this.insert('service_install', { device: device.id, installs__service: service.id });
      }
    }
    this.deviceKeys.set(deviceKey, device.id);
    this.deviceActors.set(device.id, { key: deviceKey, actorId: this.nextActorId++ });
    return { id: device.id, uuid: seed.uuid, deviceKey };
  }

  removeDevice(uuid: string): boolean {
    const device = this.findBy('device', 'uuid', uuid);
    if (!device) return false;
    for (const install of this.installsOf(device.id)) {
      this.deleteWhere(
        'device_service_environment_variable',
        (v) => v.service_install === install.id,
      );
      this.table('service_install').delete(install.id);
    }
    this.deleteWhere('device_environment_variable', (v) => v.device === device.id);
    this.table('device').delete(device.id);
    const actor = this.deviceActors.get(device.id);
    if (actor) this.deviceKeys.delete(actor.key);
    this.deviceActors.delete(device.id);
    return true;
  }

  /** The actor owning `key`, or undefined for an unknown key. */
  authenticate(key: string | undefined): Actor | undefined {
    if (!key) return undefined;
    const user = this.users.get(key);
    if (user) return user;
    const deviceId = this.deviceKeys.get(key);
    const device = deviceId === undefined ? undefined : this.table('device').get(deviceId);
    const actor = deviceId === undefined ? undefined : this.deviceActors.get(deviceId);
    if (!device || !actor) return undefined;
    return {
      kind: 'device',
      actorId: actor.actorId,
      deviceId: device.id,
      uuid: String(device.uuid),
    };
  }

  /**
   * What `actor` may read. A device key sees only its own device, its fleet,
   * the fleet's services and its own installs and variables, like balena's
   * device-actor permissions; other rows are simply absent.
   */
  scopeFor(actor: Actor): DataScope {
    if (actor.kind === 'user') {
      return {
        rows: (resource) => [...this.table(resource).values()],
        row: (resource, id) => (typeof id === 'number' ? this.table(resource).get(id) : undefined),
      };
    }
    const visible = (resource: ResourceName, row: Row): boolean => {
      const device = this.table('device').get(actor.deviceId);
      if (!device) return false;
      switch (resource) {
        case 'device':
          return row.id === device.id;
        case 'application':
          return row.id === device.belongs_to__application;
        case 'service':
          return row.application === device.belongs_to__application;
        case 'service_install':
        case 'device_environment_variable':
          return row.device === device.id;
        case 'device_service_environment_variable':
          return (
            this.table('service_install').get(Number(row.service_install))?.device === device.id
          );
      }
    };
    return {
      rows: (resource) =>
        [...this.table(resource).values()].filter((row) => visible(resource, row)),
      row: (resource, id) => {
        const row = typeof id === 'number' ? this.table(resource).get(id) : undefined;
        return row && visible(resource, row) ? row : undefined;
      },
    };
  }

  /** Adds a row after checking links and natural keys; throws 409 on a duplicate. */
  insert(resource: ResourceName, values: Record<string, unknown>): Row {
    const { id: requestedId, ...rest } = values;
    const table = this.table(resource);
    let id: number;
    if (typeof requestedId === 'number') {
      if (table.has(requestedId))
        throw new SimHttpError(409, `${resource} ${requestedId} already exists`);
      id = requestedId;
    } else {
      id = this.nextId.get(resource) ?? 1;
      while (table.has(id)) id++;
    }
    this.nextId.set(resource, Math.max(this.nextId.get(resource) ?? 1, id + 1));
    const row: Row = { id, created_at: now(), ...rest };
    this.assertUnique(resource, [row], [...table.values()]);
    table.set(id, row);
    return row;
  }

  /** Applies `changes` to each row, all or nothing; throws 409 on a duplicate natural key. */
  update(resource: ResourceName, rows: readonly Row[], changes: Record<string, unknown>): void {
    const updated = rows.map((row) => ({ ...row, ...changes }));
    const ids = new Set(rows.map((row) => row.id));
    const untouched = [...this.table(resource).values()].filter((row) => !ids.has(row.id));
    this.assertUnique(resource, updated, [...untouched, ...updated]);
    for (const row of updated) this.table(resource).set(row.id, row);
  }

  delete(resource: ResourceName, rows: readonly Row[]): void {
    for (const row of rows) this.table(resource).delete(row.id);
  }

  findBy(resource: ResourceName, field: string, value: unknown): Row | undefined {
    for (const row of this.table(resource).values()) if (row[field] === value) return row;
    return undefined;
  }

  get(resource: ResourceName, id: number): Row | undefined {
    return this.table(resource).get(id);
  }

  installsOf(deviceId: number): Row[] {
    return [...this.table('service_install').values()].filter((si) => si.device === deviceId);
  }

  /** The device whose uuid this is; throws 404 when unknown. */
  requireDevice(uuid: string): Row {
    const device = this.findBy('device', 'uuid', uuid);
    if (!device) throw new SimHttpError(404, `unknown device ${uuid}`);
    return device;
  }

  deviceEnvVars(uuid: string): Record<string, string> {
    const device = this.requireDevice(uuid);
    return this.variables('device_environment_variable', (v) => v.device === device.id);
  }

  serviceEnvVars(uuid: string, service: string): Record<string, string> {
    const install = this.requireInstall(uuid, service);
    return this.variables(
      'device_service_environment_variable',
      (v) => v.service_install === install.id,
    );
  }

  /** Every service of the device's fleet, with its device-service variables. */
  allServiceEnvVars(uuid: string): Record<string, Record<string, string>> {
    const device = this.requireDevice(uuid);
    const result: Record<string, Record<string, string>> = {};
    for (const install of this.installsOf(device.id)) {
      const service = this.table('service').get(Number(install.installs__service));
      if (!service) continue;
      result[String(service.service_name)] = this.variables(
        'device_service_environment_variable',
        (v) => v.service_install === install.id,
      );
    }
    return result;
  }

  setDeviceEnvVar(uuid: string, name: string, value: string): void {
    const device = this.requireDevice(uuid);
    const existing = [...this.table('device_environment_variable').values()].find(
      (v) => v.device === device.id && v.name === name,
    );
    if (existing) this.update('device_environment_variable', [existing], { value });
    else this.insert('device_environment_variable', { device: device.id, name, value });
  }

  removeDeviceEnvVar(uuid: string, name: string): void {
    const device = this.requireDevice(uuid);
    this.deleteWhere(
      'device_environment_variable',
      (v) => v.device === device.id && v.name === name,
    );
  }

  private requireInstall(uuid: string, serviceName: string): Row {
    const device = this.requireDevice(uuid);
    const install = this.installsOf(device.id).find(
      (si) => this.table('service').get(Number(si.installs__service))?.service_name === serviceName,
    );
    if (!install) throw new SimHttpError(404, `device ${uuid} has no service ${serviceName}`);
    return install;
  }

  private variables(resource: ResourceName, match: (row: Row) => boolean): Record<string, string> {
    const result: Record<string, string> = {};
    for (const row of this.table(resource).values()) {
      if (match(row)) result[String(row.name)] = String(row.value);
    }
    return result;
  }

  private deleteWhere(resource: ResourceName, match: (row: Row) => boolean): void {
    const table = this.table(resource);
    for (const row of [...table.values()]) if (match(row)) table.delete(row.id);
  }

  /** Throws 409 when a candidate shares a natural key with another row of `all`. */
  private assertUnique(
    resource: ResourceName,
    candidates: readonly Row[],
    all: readonly Row[],
  ): void {
    for (const key of SCHEMA[resource].unique) {
      for (const row of candidates) {
        const clash = all.some(
          (other) => other.id !== row.id && key.every((field) => other[field] === row[field]),
        );
        // balena's wording; the SDK's upsert matches /unique/i to fall back to PATCH.
        if (clash) throw new SimHttpError(409, 'Unique key constraint violated');
      }
    }
  }

  private table(resource: ResourceName): Map<number, Row> {
    const table = this.tables.get(resource);
    if (!table) throw new Error(`no table ${resource}`);
    return table;
  }
}
