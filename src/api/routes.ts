import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { z } from 'zod';
import { validateCsr } from '../shared/csr';
import { type Job, publicDevice, publicJob, uuidSchema } from '../shared/domain';
import { HttpError, NotFoundError, ValidationError } from '../shared/errors';
import { type Authenticator, assertMayActOn, type Caller } from './auth';
import { type HttpResponse, header, json, parseJsonBody, text } from './http';
import type { ProvisioningService, RequestOutcome } from './service';

export interface RouteDeps {
  readonly service: ProvisioningService;
  readonly auth: Authenticator;
  readonly legacyEnabled: boolean;
  /** Seconds the legacy route waits for the job before answering 202. */
  readonly legacyWaitSeconds: number;
}

export interface Route {
  readonly pattern: RegExp;
  readonly methods: Readonly<Record<string, RouteHandler>>;
}

export type RouteHandler = (
  event: APIGatewayProxyEventV2,
  params: Record<string, string>,
) => Promise<HttpResponse>;

const serviceNameSchema = z.string().trim().min(1).max(255);

const provisionBodySchema = z
  .object({
    uuid: z.string(),
    balenaService: serviceNameSchema.optional(),
    csr: z.string().max(16_384).optional(),
    rotate: z.boolean().optional(),
  })
  .strict();

const legacyBodySchema = z.object({
  uuid: z.string().optional(),
  balena_service: z.string().optional(),
});

const waitSchema = z.coerce.number().int().min(0).max(25);

const RETRY_AFTER_SECONDS = '2';

function parseUuid(raw: unknown): string {
  const parsed = uuidSchema.safeParse(typeof raw === 'string' ? raw.trim().toLowerCase() : raw);
  if (!parsed.success) {
    throw new ValidationError(
      'invalid_uuid',
      'uuid must be a balena device uuid (32 or 62 hex characters)',
    );
  }
  return parsed.data;
}

function jobLocation(job: Job): string {
  return `/v1/jobs/${job.jobId}`;
}

function accepted(job: Job): HttpResponse {
  return json(202, publicJob(job), {
    Location: jobLocation(job),
    'Retry-After': RETRY_AFTER_SECONDS,
  });
}

function answerOutcome(outcome: RequestOutcome): HttpResponse {
  if (outcome.kind === 'provisioned') {
    if (!outcome.job) {
      return json(200, { device: publicDevice(outcome.device) });
    }
    return json(200, publicJob(outcome.job), { Location: jobLocation(outcome.job) });
  }
  return accepted(outcome.job);
}

async function authenticate(deps: RouteDeps, event: APIGatewayProxyEventV2): Promise<Caller> {
  return deps.auth.authenticate(header(event, 'authorization'));
}

function requestedBy(caller: Caller): string {
  return caller.kind;
}

/** The v1 routes and the legacy routes, keyed by path pattern and method. */
export function makeRoutes(deps: RouteDeps) {
  const provision: RouteHandler = async (event) => {
    const caller = await authenticate(deps, event);
    const parsed = provisionBodySchema.safeParse(parseJsonBody(event));
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      if (issue?.path[0] === 'uuid') parseUuid(undefined);
      throw new ValidationError(
        'invalid_request',
        `invalid body: ${issue ? `${issue.path.join('.') || 'body'}: ${issue.message}` : 'unknown'}`,
      );
    }
    const uuid = parseUuid(parsed.data.uuid);
    assertMayActOn(caller, uuid);
    const { balenaService, csr, rotate } = parsed.data;
    if (csr !== undefined) await validateCsr(csr, uuid);
    const outcome = await deps.service.request(
      'provision',
      uuid,
      {
        ...(balenaService ? { balenaService } : {}),
        ...(csr ? { csr: csr.trim() } : {}),
        ...(rotate ? { rotate } : {}),
      },
      requestedBy(caller),
    );
    return answerOutcome(outcome);
  };

  const getJob: RouteHandler = async (event, params) => {
    const caller = await authenticate(deps, event);
    const jobId = z.string().uuid().safeParse(params.jobId);
    if (!jobId.success) throw new NotFoundError('job_not_found', 'no such job');
    const waitRaw = event.queryStringParameters?.wait;
    const wait = waitSchema.safeParse(waitRaw ?? '0');
    if (!wait.success) {
      throw new ValidationError(
        'invalid_wait',
        'wait must be a whole number of seconds from 0 to 25',
      );
    }
    const first = await deps.service.getJob(jobId.data);
    if (!first) throw new NotFoundError('job_not_found', 'no such job');
    assertMayActOn(caller, first.uuid);
    const job =
      wait.data > 0 ? ((await deps.service.waitForJob(first.jobId, wait.data)) ?? first) : first;
    const running = job.status === 'queued' || job.status === 'running';
    return json(200, publicJob(job), running ? { 'Retry-After': RETRY_AFTER_SECONDS } : {});
  };

  const getDevice: RouteHandler = async (event, params) => {
    const caller = await authenticate(deps, event);
    const uuid = parseUuid(params.uuid);
    assertMayActOn(caller, uuid);
    const device = await deps.service.getDevice(uuid);
    if (!device)
      throw new NotFoundError('device_not_found', 'this service has no record of the device');
    return json(200, publicDevice(device));
  };

  const deleteDevice: RouteHandler = async (event, params) => {
    const caller = await authenticate(deps, event);
    const uuid = parseUuid(params.uuid);
    assertMayActOn(caller, uuid);
    const outcome = await deps.service.requestDeprovision(uuid, requestedBy(caller));
    return answerOutcome(outcome);
  };

  const legacyProvision: RouteHandler = async (event) => {
    if (!deps.legacyEnabled) throw new NotFoundError('not_found', 'no such route');
    return legacyText(async () => {
      const body = parseLegacyBody(event);
      const outcome = await deps.service.request(
        'provision',
        body.uuid,
        body.service ? { balenaService: body.service } : {},
        'legacy',
      );
      // The device compares this exact text and then asks its supervisor for the variables.
      if (outcome.kind === 'provisioned') return text(400, 'thing already exists');
      return legacyResult(
        await deps.service.waitForJob(outcome.job.jobId, deps.legacyWaitSeconds),
        outcome.job,
        201,
        'device created',
      );
    });
  };

  const legacyDeprovision: RouteHandler = async (event) => {
    if (!deps.legacyEnabled) throw new NotFoundError('not_found', 'no such route');
    return legacyText(async () => {
      const caller = await authenticate(deps, event);
      const body = parseLegacyBody(event);
      assertMayActOn(caller, body.uuid);
      const outcome = await deps.service.requestDeprovision(
        body.uuid,
        requestedBy(caller),
        body.service,
      );
      if (outcome.kind === 'provisioned')
        throw new Error('deprovision cannot be refused as provisioned');
      return legacyResult(
        await deps.service.waitForJob(outcome.job.jobId, deps.legacyWaitSeconds),
        outcome.job,
        200,
        'device deleted',
      );
    });
  };

  return {
    routes: [
      { pattern: /^\/v1\/provision$/, methods: { POST: provision } },
      { pattern: /^\/v1\/jobs\/(?<jobId>[^/]+)$/, methods: { GET: getJob } },
      {
        pattern: /^\/v1\/devices\/(?<uuid>[^/]+)$/,
        methods: { GET: getDevice, DELETE: deleteDevice },
      },
      {
        pattern: /^\/provision\/?$/,
        methods: { POST: legacyProvision, DELETE: legacyDeprovision },
      },
    ] satisfies Route[] as Route[],
  };
}

function parseLegacyBody(event: APIGatewayProxyEventV2): { uuid: string; service?: string } {
  const parsed = legacyBodySchema.safeParse(parseJsonBody(event));
  if (!parsed.success)
    throw new ValidationError('invalid_request', 'body must be { "uuid", "balena_service" }');
  const service = parsed.data.balena_service?.trim();
  return { uuid: parseUuid(parsed.data.uuid), ...(service ? { service } : {}) };
}

/** Legacy answers are plain text with the original's statuses, never problem+json. */
async function legacyText(run: () => Promise<HttpResponse>): Promise<HttpResponse> {
  try {
    return await run();
  } catch (error: unknown) {
    if (error instanceof HttpError) return text(error.status, error.message, error.headers);
    throw error;
  }
}

const LEGACY_CLIENT_ERRORS = new Set(['device_not_found', 'service_not_found', 'invalid_csr']);

function legacyResult(
  job: Job | undefined,
  initial: Job,
  successStatus: number,
  successText: string,
): HttpResponse {
  const current = job ?? initial;
  if (current.status === 'succeeded') return text(successStatus, successText);
  if (current.status === 'failed') {
    const code = current.error?.code ?? 'failed';
    const status = LEGACY_CLIENT_ERRORS.has(code) ? 400 : 500;
    return text(status, current.error?.message ?? 'provisioning failed');
  }
  return text(202, `in progress; poll /v1/jobs/${current.jobId}`, {
    Location: `/v1/jobs/${current.jobId}`,
    'Retry-After': RETRY_AFTER_SECONDS,
  });
}
