/** A device to create in a fleet. Missing fields get generated defaults. */
export interface SimDeviceSeed {
  uuid: string;
  id?: number;
  /** Default: `device-<first 7 characters of the uuid>`. */
  deviceName?: string;
  /** Default: true. */
  isOnline?: boolean;
  /** The device API key; generated (32 hex characters) when missing. */
  deviceKey?: string;
}

/** A fleet (balena `application`), its services and its devices. */
export interface SimFleetSeed {
  /** e.g. `myorg/myfleet`. */
  slug: string;
  id?: number;
  services?: string[];
  devices?: SimDeviceSeed[];
}

/** A user whose API key sees every fleet. */
export interface SimUserSeed {
  username: string;
  apiKey: string;
}

export interface BalenaSimSeed {
  users?: SimUserSeed[];
  fleets?: SimFleetSeed[];
}

/**
 * A fault injected before normal handling of `/v7` and `/actor` requests.
 * Latency rules add up and the request continues; the first matching `status`
 * or `reset` rule ends the request.
 */
export interface FaultRule {
  /** `reset` destroys the socket, which the client sees as a network error. */
  kind: 'status' | 'latency' | 'reset';
  /** For `status`: e.g. 429, 500, 503 (default 503). */
  status?: number;
  /** Adds a `Retry-After` header (for 429). */
  retryAfterSeconds?: number;
  /** For `latency`: delay before the request is served normally. */
  latencyMs?: number;
  /** Apply to the next N matching requests; default: until cleared. */
  count?: number;
  /** 0..1: apply to this share of matching requests (random). */
  fraction?: number;
  /** Only this HTTP method. */
  method?: string;
  /** Only requests whose decoded path+query contains this substring. */
  route?: string;
  /**
   * Only requests that concern one of these devices: the uuid in the URL, or
   * the device's numeric id in the URL filter/key or the JSON body (`device`,
   * or `service_install` resolved to its device).
   */
  deviceUuids?: string[];
}

/** One served API request (admin `/__sim` requests are not logged). */
export interface SimRequestLogEntry {
  method: string;
  /** Decoded path and query. */
  path: string;
  /** 0 while in flight and for `reset` faults. */
  status: number;
  /** Username for user keys, `device:<uuid>` for device keys. */
  actor?: string;
}

/** An in-process balena API that the unmodified balena-sdk works against. */
export interface BalenaSimulator {
  /** `http://127.0.0.1:PORT`; pass it as the SDK's `apiUrl`. */
  readonly url: string;
  /**
   * Adds users, fleets, services and devices; idempotent by slug/uuid (an
   * existing device is left as it is; a known username gains the extra key).
   */
  seed(seed: BalenaSimSeed): void;
  /** Creates a device (and a service install per fleet service); throws for an unknown fleet or a taken uuid. */
  addDevice(
    fleetSlug: string,
    device: SimDeviceSeed,
  ): { id: number; uuid: string; deviceKey: string };
  /** Deletes the device, its service installs and its variables; no-op for an unknown uuid. */
  removeDevice(uuid: string): void;
  /** The device-level variables; throws for an unknown uuid. */
  deviceEnvVars(uuid: string): Record<string, string>;
  /** The service-level variables of one service; throws for an unknown uuid or service. */
  serviceEnvVars(uuid: string, service: string): Record<string, string>;
  /** Creates or overwrites a device-level variable (e.g. to plant drift in tests). */
  setDeviceEnvVar(uuid: string, name: string, value: string): void;
  removeDeviceEnvVar(uuid: string, name: string): void;
  addFault(rule: FaultRule): void;
  clearFaults(): void;
  /** Every API request served, in arrival order. */
  readonly requests: SimRequestLogEntry[];
  clearRequests(): void;
  stop(): Promise<void>;
}
