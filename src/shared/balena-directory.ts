import { type BalenaSDK, getSdk } from 'balena-sdk';
import { PermanentError, TransientError } from './errors';

/** Where variables live: a device, or one service of it. */
export interface VariableScope {
  readonly deviceId: number;
  readonly serviceInstallId?: number;
}

export interface BalenaDevice {
  readonly id: number;
  readonly uuid: string;
}

export interface FleetDevice extends BalenaDevice {
  readonly deviceName: string;
  readonly isOnline: boolean;
}

/** Port: the balena calls the worker and the CLI make, with the operator's key. */
export interface DeviceDirectory {
  /** The device, or undefined when balena does not know it. */
  findDevice(uuid: string): Promise<BalenaDevice | undefined>;
  /** The service install of `service` on the device; PermanentError `service_not_found` when none. */
  resolveServiceInstall(uuid: string, service: string): Promise<number>;
  setVariables(scope: VariableScope, variables: Readonly<Record<string, string>>): Promise<void>;
  getVariable(scope: VariableScope, name: string): Promise<string | undefined>;
  removeVariables(scope: VariableScope, names: readonly string[]): Promise<void>;
  listFleetDevices(fleetSlug: string, options?: { onlineOnly?: boolean }): Promise<FleetDevice[]>;
}

export interface BalenaSdkOptions {
  readonly apiUrl: string;
  readonly apiKey: string;
  /** 429s whose Retry-After is at most this are retried in-process; longer ones reach SQS backoff. */
  readonly maxInlineRetryAfterMs?: number;
}

/** A balena-sdk instance logged in with `apiKey`, holding no state on disk. */
export async function makeBalenaSdk(options: BalenaSdkOptions): Promise<BalenaSDK> {
  const limit = options.maxInlineRetryAfterMs ?? 0;
  const sdk = getSdk({
    apiUrl: options.apiUrl,
    dataDirectory: false,
    retryRateLimitedRequests: (retryAfterMs: number) => retryAfterMs <= limit,
  });
  await sdk.auth.loginWithToken(options.apiKey);
  return sdk;
}

interface BalenaLikeError {
  statusCode?: number;
  code?: string;
  responseHeaders?: { get(name: string): string | null };
}

/**
 * Maps a balena-sdk error to the domain: 429 and 5xx and network errors are transient (a 429
 * keeps its Retry-After), other refusals are permanent.
 */
export function classifyBalenaError(error: unknown, operation: string): Error {
  if (error instanceof TransientError || error instanceof PermanentError) return error;
  // The SDK's error carries the request options, whose body can hold a private key: keep only
  // the status and message, never the original error as a cause.
  const e = (typeof error === 'object' && error !== null ? error : {}) as BalenaLikeError;
  const status = e.statusCode;
  const message =
    status === undefined && error instanceof Error ? error.message : `HTTP ${status ?? 'error'}`;
  if (status === 429) {
    const header = e.responseHeaders?.get('Retry-After');
    const seconds = header ? Number.parseInt(header, 10) : Number.NaN;
    return new TransientError(
      `balena ${operation} was rate limited`,
      'balena_rate_limited',
      Number.isFinite(seconds) ? seconds * 1000 : undefined,
    );
  }
  if (status === undefined || status >= 500 || status === 408) {
    return new TransientError(`balena ${operation} failed: ${message}`, 'balena_unavailable');
  }
  if (status === 401 || status === 403) {
    return new PermanentError(
      `balena refused ${operation}: the operator API key lacks access`,
      'balena_unauthorized',
    );
  }
  return new PermanentError(
    `balena ${operation} failed with ${status}: ${message}`,
    'balena_request_rejected',
  );
}

/** DeviceDirectory through balena-sdk; one device lookup plus one write per variable. */
export class BalenaSdkDirectory implements DeviceDirectory {
  constructor(private readonly sdk: BalenaSDK) {}

  private async call<T>(operation: string, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (error: unknown) {
      throw classifyBalenaError(error, operation);
    }
  }

  async findDevice(uuid: string): Promise<BalenaDevice | undefined> {
    try {
      const device = await this.sdk.models.device.get(uuid, { $select: ['id', 'uuid'] });
      return { id: device.id, uuid: device.uuid };
    } catch (error: unknown) {
      if (error instanceof this.sdk.errors.BalenaDeviceNotFound) return undefined;
      throw classifyBalenaError(error, 'device lookup');
    }
  }

  async resolveServiceInstall(uuid: string, service: string): Promise<number> {
    const installs = await this.call('service lookup', () =>
      this.sdk.pine.get({
        resource: 'service_install',
        options: {
          $select: 'id',
          $filter: {
            device: { $any: { $alias: 'd', $expr: { d: { uuid } } } },
            installs__service: {
              $any: { $alias: 's', $expr: { s: { service_name: service } } },
            },
          },
        },
      }),
    );
    const install = installs[0];
    if (!install) {
      throw new PermanentError(`the device has no service named '${service}'`, 'service_not_found');
    }
    return install.id;
  }

  async setVariables(scope: VariableScope, variables: Readonly<Record<string, string>>) {
    const serviceInstall = scope.serviceInstallId;
    for (const [name, value] of Object.entries(variables)) {
      await this.call(`set ${name}`, async () => {
        if (serviceInstall === undefined) {
          await this.sdk.pine.upsert({
            resource: 'device_environment_variable',
            id: { device: scope.deviceId, name },
            body: { value },
          });
        } else {
          await this.sdk.pine.upsert({
            resource: 'device_service_environment_variable',
            id: { service_install: serviceInstall, name },
            body: { value },
          });
        }
      });
    }
  }

  async getVariable(scope: VariableScope, name: string): Promise<string | undefined> {
    const rows: Array<{ value: string }> = await this.call(`get ${name}`, async () => {
      if (scope.serviceInstallId === undefined) {
        return this.sdk.pine.get({
          resource: 'device_environment_variable',
          options: { $select: 'value', $filter: { device: scope.deviceId, name } },
        });
      }
      return this.sdk.pine.get({
        resource: 'device_service_environment_variable',
        options: { $select: 'value', $filter: { service_install: scope.serviceInstallId, name } },
      });
    });
    return rows[0]?.value;
  }

  async removeVariables(scope: VariableScope, names: readonly string[]): Promise<void> {
    const serviceInstall = scope.serviceInstallId;
    for (const name of names) {
      await this.call(`remove ${name}`, async () => {
        if (serviceInstall === undefined) {
          await this.sdk.pine.delete({
            resource: 'device_environment_variable',
            options: { $filter: { device: scope.deviceId, name } },
          });
        } else {
          await this.sdk.pine.delete({
            resource: 'device_service_environment_variable',
            options: { $filter: { service_install: serviceInstall, name } },
          });
        }
      });
    }
  }

  async listFleetDevices(fleetSlug: string, options: { onlineOnly?: boolean } = {}) {
    const devices = await this.call('fleet listing', () =>
      this.sdk.models.device.getAllByApplication(fleetSlug, {
        $select: ['id', 'uuid', 'device_name', 'is_online'],
        ...(options.onlineOnly ? { $filter: { is_online: true } } : {}),
      }),
    );
    return devices.map((d) => ({
      id: d.id,
      uuid: d.uuid,
      deviceName: d.device_name,
      isOnline: d.is_online,
    }));
  }
}
