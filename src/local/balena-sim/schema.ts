/** The subset of balena's v7 model that the simulator serves. */
export type ResourceName =
  | 'application'
  | 'device'
  | 'service'
  | 'service_install'
  | 'device_environment_variable'
  | 'device_service_environment_variable';

/** A stored row: scalar fields plus to-one links stored as the target's id. */
export type Row = { id: number } & Record<string, unknown>;

export interface ResourceSchema {
  /** Scalar fields, served as-is. */
  readonly fields: readonly string[];
  /** To-one navigation properties: stored as an id, served as `{__id}`. */
  readonly links: Readonly<Record<string, ResourceName>>;
  /** To-many navigation properties: rows of `resource` whose `via` link points here. */
  readonly reverse: Readonly<Record<string, { resource: ResourceName; via: string }>>;
  /** Natural keys; a POST/PATCH that would duplicate one answers 409. */
  readonly unique: readonly (readonly string[])[];
  /** Fields an API client may POST/PATCH; empty when the API is read-only here. */
  readonly writable: readonly string[];
}

const VARIABLE_FIELDS = ['id', 'created_at', 'name', 'value'] as const;

export const SCHEMA: Readonly<Record<ResourceName, ResourceSchema>> = {
  application: {
    fields: [
      'id',
      'created_at',
      'app_name',
      'slug',
      'uuid',
      'is_of__class',
      'is_host',
      'is_archived',
      'is_public',
      'should_track_latest_release',
    ],
    links: {},
    reverse: {
      owns__device: { resource: 'device', via: 'belongs_to__application' },
      service: { resource: 'service', via: 'application' },
    },
    unique: [['slug'], ['uuid']],
    writable: [],
  },
  device: {
    fields: [
      'id',
      'created_at',
      'modified_at',
      'uuid',
      'device_name',
      'note',
      'is_online',
      'api_heartbeat_state',
      'last_connectivity_event',
      'is_connected_to_vpn',
      'is_active',
      'is_frozen',
      'status',
      'os_version',
      'os_variant',
      'supervisor_version',
      'ip_address',
      'mac_address',
      'public_address',
      'is_web_accessible',
    ],
    links: { belongs_to__application: 'application' },
    reverse: {
      device_environment_variable: { resource: 'device_environment_variable', via: 'device' },
      service_install: { resource: 'service_install', via: 'device' },
    },
    unique: [['uuid']],
    writable: [],
  },
  service: {
    fields: ['id', 'created_at', 'service_name'],
    links: { application: 'application' },
    reverse: { service_install: { resource: 'service_install', via: 'installs__service' } },
    unique: [['application', 'service_name']],
    writable: [],
  },
  service_install: {
    fields: ['id', 'created_at'],
    links: { device: 'device', installs__service: 'service' },
    reverse: {
      device_service_environment_variable: {
        resource: 'device_service_environment_variable',
        via: 'service_install',
      },
    },
    unique: [['device', 'installs__service']],
    writable: [],
  },
  device_environment_variable: {
    fields: VARIABLE_FIELDS,
    links: { device: 'device' },
    reverse: {},
    unique: [['device', 'name']],
    writable: ['device', 'name', 'value'],
  },
  device_service_environment_variable: {
    fields: VARIABLE_FIELDS,
    links: { service_install: 'service_install' },
    reverse: {},
    unique: [['service_install', 'name']],
    writable: ['service_install', 'name', 'value'],
  },
};

export function isResourceName(name: string): name is ResourceName {
  return Object.hasOwn(SCHEMA, name);
}
