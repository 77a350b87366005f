import { createServer, type IncomingMessage, type ServerResponse, STATUS_CODES } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { handleAdmin } from './admin';
import { FaultInjector, type FaultSubject } from './faults';
import { parseJsonBody, SimHttpError, type SimReply, unauthorized } from './http';
import { type ODataRequest, parseODataUrl, presentRows, selectRows } from './odata';
import { type ResourceName, SCHEMA } from './schema';
import { type Actor, type DataScope, SimStore } from './store';
import type { BalenaSimSeed, BalenaSimulator, SimRequestLogEntry } from './types';

/**
 * Starts the simulator on `host` (default 127.0.0.1) and `port` (default 0:
 * a free port), optionally seeded.
 */
export async function startBalenaSimulator(
  options: { port?: number; seed?: BalenaSimSeed; host?: string } = {},
): Promise<BalenaSimulator> {
  const store = new SimStore();
  if (options.seed) store.seed(options.seed);
  const faults = new FaultInjector(store);
  const requests: SimRequestLogEntry[] = [];
  const context: ServerContext = { store, faults, requests };

  const server = createServer((req, res) => {
    handle(context, req, res).catch((error: unknown) => {
      if (!res.headersSent) reply(res, { status: 500, body: `balena simulator: ${String(error)}` });
      else res.destroy();
    });
  });
  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://${host}:${port}`,
    seed: (seed) => store.seed(seed),
    addDevice: (fleetSlug, device) => store.addDevice(fleetSlug, device),
    removeDevice: (uuid) => {
      store.removeDevice(uuid);
    },
    deviceEnvVars: (uuid) => store.deviceEnvVars(uuid),
    serviceEnvVars: (uuid, service) => store.serviceEnvVars(uuid, service),
    setDeviceEnvVar: (uuid, name, value) => store.setDeviceEnvVar(uuid, name, value),
    removeDeviceEnvVar: (uuid, name) => store.removeDeviceEnvVar(uuid, name),
    addFault: (rule) => faults.add(rule),
    clearFaults: () => faults.clear(),
    requests,
    clearRequests: () => {
      requests.length = 0;
    },
    stop: () =>
      new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeAllConnections();
      }),
  };
}

export interface ServerContext {
  store: SimStore;
  faults: FaultInjector;
  requests: SimRequestLogEntry[];
}

async function handle(
  ctx: ServerContext,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const { url: rawUrl, apiKey } = extractApiKey(req.url ?? '/');
  const method = req.method ?? 'GET';
  const rawBody = await readBody(req);
  const pathname = rawUrl.split('?')[0] ?? '';
  if (pathname === '/__sim' || pathname.startsWith('/__sim/')) {
    const result = await answer(() => handleAdmin(ctx, method, pathname, rawBody));
    // Admin clients parse every answer as JSON, errors included.
    reply(
      res,
      typeof result.body === 'string' ? { ...result, body: { error: result.body } } : result,
    );
    return;
  }

  const actor = ctx.store.authenticate(bearerKey(req) ?? apiKey);
  const path = safeDecode(rawUrl);
  const entry: SimRequestLogEntry = { method, path, status: 0 };
  if (actor) entry.actor = actor.kind === 'user' ? actor.username : `device:${actor.uuid}`;
  ctx.requests.push(entry);
  res.once('finish', () => {
    entry.status = res.statusCode;
  });

  const isApi = pathname.startsWith('/v7/');
  const subject: FaultSubject = { method, path, body: looseJson(rawBody) };
  if (isApi) subject.odata = tryParse(rawUrl.slice('/v7'.length));
  const faultable = isApi || pathname.startsWith('/actor/');
  const fault = faultable ? ctx.faults.decide(subject) : { latencyMs: 0 };
  if (fault.latencyMs > 0) await sleep(fault.latencyMs);
  if (fault.end?.kind === 'reset') {
    req.socket.destroy();
    return;
  }
  if (fault.end?.kind === 'status') {
    const { status, retryAfterSeconds } = fault.end;
    const headers: Record<string, string> =
      retryAfterSeconds === undefined ? {} : { 'Retry-After': String(retryAfterSeconds) };
    reply(res, { status, body: STATUS_CODES[status] ?? `Error ${status}`, headers });
    return;
  }

  if (pathname === '/actor/v1/whoami' && method === 'GET') {
    reply(
      res,
      actor
        ? { status: 200, body: whoami(ctx.store, actor) }
        : { status: 401, body: 'Unauthorized' },
    );
    return;
  }
  if (!isApi) {
    reply(res, { status: 404, body: `balena simulator: no route ${method} ${pathname}` });
    return;
  }
  reply(res, await answer(() => handleODataRequest(ctx.store, actor, method, rawUrl, rawBody)));
}

function whoami(store: SimStore, actor: Actor): Record<string, unknown> {
  if (actor.kind === 'user') {
    return {
      id: actor.actorId,
      actorType: 'user',
      actorTypeId: actor.userId,
      username: actor.username,
    };
  }
  const device = store.get('device', actor.deviceId);
  return {
    id: actor.actorId,
    actorType: 'device',
    actorTypeId: actor.deviceId,
    uuid: device?.uuid,
  };
}

function handleODataRequest(
  store: SimStore,
  actor: Actor | undefined,
  method: string,
  rawUrl: string,
  rawBody: string,
): SimReply {
  if (!actor) throw unauthorized();
  const request = parseODataUrl(rawUrl.slice('/v7'.length));
  const scope = store.scopeFor(actor);
  const { resource } = request;
  if (method === 'GET') {
    return { status: 200, body: { d: presentRows(scope, request, selectRows(scope, request)) } };
  }
  if (!['POST', 'PATCH', 'DELETE'].includes(method)) {
    throw new SimHttpError(501, `balena simulator does not support ${method} requests`);
  }
  if (SCHEMA[resource].writable.length === 0) {
    throw new SimHttpError(501, `balena simulator does not support ${method} on ${resource}`);
  }
  // balena's device-actor permissions allow no variable writes; pine answers 401, not 403.
  if (actor.kind === 'device') throw unauthorized();
  if (method === 'DELETE') {
    store.delete(resource, selectRows(scope, request));
    return { status: 200, body: 'OK' };
  }
  const body = parseJsonBody(rawBody);
  if (method === 'POST') {
    if (request.key || Object.keys(request.options).length > 0) {
      throw new SimHttpError(400, 'POST takes neither a key nor query options');
    }
    const values = writableValues(scope, resource, body, false);
    const row = store.insert(resource, values);
    return { status: 201, body: presentRows(scope, { ...request, options: {} }, [row])[0] };
  }
  const changes = writableValues(scope, resource, body, true);
  store.update(resource, selectRows(scope, request), changes);
  return { status: 200, body: 'OK' };
}

/** Validates a POST/PATCH body against the resource's writable fields. */
function writableValues(
  scope: DataScope,
  resource: ResourceName,
  body: unknown,
  partial: boolean,
): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new SimHttpError(400, 'The body must be a JSON object');
  }
  const schema = SCHEMA[resource];
  const values: Record<string, unknown> = {};
  for (const [field, value] of Object.entries(body)) {
    if (!schema.writable.includes(field)) {
      throw new SimHttpError(400, `"${field}" of ${resource} is not writable here`);
    }
    const linked = schema.links[field];
    if (linked) {
      if (!Number.isInteger(value)) throw new SimHttpError(400, `"${field}" must be an id`);
      // pine answers 401 when the linked row is missing or not the actor's to use.
      if (!scope.row(linked, value)) throw unauthorized();
    } else if (typeof value !== 'string') {
      throw new SimHttpError(400, `"${field}" must be a string`);
    }
    values[field] = value;
  }
  if (!partial) {
    const missing = schema.writable.filter((field) => !(field in values));
    if (missing.length > 0) throw new SimHttpError(400, `Missing ${missing.join(', ')}`);
  } else if (Object.keys(values).length === 0) {
    throw new SimHttpError(400, 'Nothing to update');
  }
  return values;
}

async function answer(fn: () => SimReply | Promise<SimReply>): Promise<SimReply> {
  try {
    return await fn();
  } catch (error: unknown) {
    if (error instanceof SimHttpError) return { status: error.status, body: error.message };
    throw error;
  }
}

function reply(res: ServerResponse, { status, body, headers = {} }: SimReply): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': typeof body === 'string' ? 'text/plain; charset=utf-8' : 'application/json',
    'Content-Length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** balena also accepts the key as `?apikey=`; not an OData option, so it comes out before parsing. */
function extractApiKey(url: string): { url: string; apiKey?: string } {
  const [path = '', query] = url.split(/\?(.*)/s);
  if (query === undefined) return { url };
  const params = query.split('&');
  const keyParam = params.find((param) => param.startsWith('apikey='));
  if (keyParam === undefined) return { url };
  const rest = params.filter((param) => param !== keyParam).join('&');
  return {
    url: rest ? `${path}?${rest}` : path,
    apiKey: safeDecode(keyParam.slice('apikey='.length)),
  };
}

function bearerKey(req: IncomingMessage): string | undefined {
  const match = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '');
  return match?.[1];
}

function looseJson(raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    return undefined;
  }
}

function tryParse(url: string): ODataRequest | undefined {
  try {
    return parseODataUrl(url);
  } catch {
    return undefined;
  }
}

function safeDecode(url: string): string {
  try {
    return decodeURIComponent(url);
  } catch {
    return url;
  }
}
