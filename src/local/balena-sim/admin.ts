import { z } from 'zod';
import { parseJsonBody, SimHttpError, type SimReply } from './http';
import type { ServerContext } from './server';
import type { BalenaSimSeed, FaultRule } from './types';

const deviceSeedSchema = z.object({
  uuid: z.string().min(1),
  id: z.number().int().positive().optional(),
  deviceName: z.string().optional(),
  isOnline: z.boolean().optional(),
  deviceKey: z.string().min(1).optional(),
});

/** Validates seed files and `POST /__sim/seed` bodies. */
export const seedSchema: z.ZodType<BalenaSimSeed> = z.object({
  users: z.array(z.object({ username: z.string().min(1), apiKey: z.string().min(1) })).optional(),
  fleets: z
    .array(
      z.object({
        slug: z.string().min(1),
        id: z.number().int().positive().optional(),
        services: z.array(z.string().min(1)).optional(),
        devices: z.array(deviceSeedSchema).optional(),
      }),
    )
    .optional(),
});

const faultSchema: z.ZodType<FaultRule> = z.object({
  kind: z.enum(['status', 'latency', 'reset']),
  status: z.number().int().min(100).max(599).optional(),
  retryAfterSeconds: z.number().int().nonnegative().optional(),
  latencyMs: z.number().nonnegative().optional(),
  count: z.number().int().positive().optional(),
  fraction: z.number().min(0).max(1).optional(),
  method: z.string().optional(),
  route: z.string().optional(),
  deviceUuids: z.array(z.string()).optional(),
});

const newDeviceSchema = deviceSeedSchema.extend({ fleet: z.string().min(1) });
const envValueSchema = z.object({ value: z.string() });

function validate<T>(schema: z.ZodType<T>, raw: string): T {
  const result = schema.safeParse(parseJsonBody(raw));
  if (!result.success) throw new SimHttpError(400, z.prettifyError(result.error));
  return result.data;
}

const ok = (body: unknown = { ok: true }, status = 200): SimReply => ({ status, body });

/**
 * The unauthenticated `/__sim` control surface for a simulator running in
 * another process. Not subject to faults and not logged in `requests`.
 */
export function handleAdmin(
  { store, faults, requests }: ServerContext,
  method: string,
  pathname: string,
  rawBody: string,
): SimReply {
  const route = `${method} ${pathname}`;
  if (route === 'POST /__sim/seed') {
    store.seed(validate(seedSchema, rawBody));
    return ok();
  }
  if (route === 'POST /__sim/faults') {
    faults.add(validate(faultSchema, rawBody));
    return ok(undefined, 201);
  }
  if (route === 'DELETE /__sim/faults') {
    faults.clear();
    return ok();
  }
  if (route === 'GET /__sim/requests') return ok(requests);
  if (route === 'DELETE /__sim/requests') {
    requests.length = 0;
    return ok();
  }
  if (route === 'POST /__sim/devices') {
    const { fleet, ...device } = validate(newDeviceSchema, rawBody);
    return ok(store.addDevice(fleet, device), 201);
  }
  const deviceMatch = /^\/__sim\/devices\/([^/]+)(\/env(?:\/([^/]+))?)?$/.exec(pathname);
  if (deviceMatch) {
    const uuid = decodeURIComponent(deviceMatch[1] ?? '');
    const name = deviceMatch[3] === undefined ? undefined : decodeURIComponent(deviceMatch[3]);
    if (!deviceMatch[2] && method === 'DELETE') {
      store.requireDevice(uuid);
      store.removeDevice(uuid);
      return ok();
    }
    if (deviceMatch[2] && name === undefined && method === 'GET') {
      return ok({ device: store.deviceEnvVars(uuid), services: store.allServiceEnvVars(uuid) });
    }
    if (name !== undefined && method === 'PUT') {
      store.setDeviceEnvVar(uuid, name, validate(envValueSchema, rawBody).value);
      return ok();
    }
    if (name !== undefined && method === 'DELETE') {
      store.removeDeviceEnvVar(uuid, name);
      return ok();
    }
  }
  throw new SimHttpError(404, `balena simulator: no admin route ${route}`);
}
