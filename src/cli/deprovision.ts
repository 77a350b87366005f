import type { RequestOutcome } from '../api/service';
import { uuidSchema } from '../shared/domain';
import { JobConflictError } from '../shared/errors';
import { mapLimit } from './concurrency';
import { errorMessage } from './enroll';
import { UsageError } from './errors';
import { type CliIo, confirm, note, printJson, printLine } from './io';
import { formatTable } from './table';
import type { CliContext } from './target';
import { followAndFinish } from './wait';

export interface DeprovisionOptions {
  readonly fleet?: string;
  readonly yes?: boolean;
  readonly wait?: boolean;
  readonly timeout: number;
  readonly concurrency: number;
  readonly json?: boolean;
}

interface DeprovisionResult {
  readonly uuid: string;
  readonly outcome: 'enqueued' | 'active' | 'failed';
  readonly jobId?: string;
  readonly detail?: string;
}

/**
 * `deprovision <uuid>` or `deprovision --fleet <slug>`: enqueues deprovision jobs (retire the
 * certificates, delete the thing, remove the variables) after a confirmation unless `--yes`.
 */
export async function deprovision(
  ctx: CliContext,
  io: CliIo,
  uuid: string | undefined,
  options: DeprovisionOptions,
): Promise<number> {
  if (!uuid === !options.fleet) {
    throw new UsageError('deprovision needs either a device uuid or --fleet <slug>');
  }
  let uuids: string[];
  let what: string;
  if (uuid) {
    if (!uuidSchema.safeParse(uuid).success) {
      throw new UsageError(`'${uuid}' is not a balena device uuid (32 or 62 hex characters)`);
    }
    uuids = [uuid];
    what = `device ${uuid}`;
  } else {
    const directory = await ctx.balena();
    const fleet = await directory.listFleetDevices(options.fleet as string);
    const records = await ctx.store.getDevices(fleet.map((d) => d.uuid));
    // Only devices this service has touched, and not those already deprovisioned.
    uuids = records.filter((r) => r.state !== 'deprovisioned' || r.activeJobId).map((r) => r.uuid);
    what = `${uuids.length} device(s) of fleet ${options.fleet} (of ${fleet.length} listed)`;
    if (uuids.length === 0) {
      if (options.json) printJson(io, { results: [] });
      else printLine(io, `deprovision: nothing to do for fleet ${options.fleet}`);
      return 0;
    }
  }
  if (!options.yes) {
    if (!io.stdin) {
      throw new UsageError(`deprovisioning ${what} needs confirmation: pass --yes`);
    }
    const ok = await confirm(
      io,
      `Deprovision ${what}? Their certificates are revoked and deleted, their things deleted and their AWS_CERT/AWS_PRIVATE_KEY variables removed.`,
    );
    if (!ok) {
      note(io, 'aborted: nothing was changed (answer y, or pass --yes)');
      return 1;
    }
  }

  const results = await mapLimit(
    uuids,
    options.concurrency,
    async (u): Promise<DeprovisionResult> => {
      try {
        const outcome: RequestOutcome = await ctx.service.requestDeprovision(u, 'cli');
        return {
          uuid: u,
          outcome: outcome.kind === 'created' ? 'enqueued' : 'active',
          jobId: outcome.job?.jobId,
        };
      } catch (error: unknown) {
        if (error instanceof JobConflictError) {
          return {
            uuid: u,
            outcome: 'failed',
            jobId: error.activeJobId,
            detail: 'a provision job is active for this device; try again when it ends',
          };
        }
        return { uuid: u, outcome: 'failed', detail: errorMessage(error) };
      }
    },
  );
  const count = (o: DeprovisionResult['outcome']) => results.filter((r) => r.outcome === o).length;
  if (!options.json) {
    printLine(
      io,
      formatTable(
        ['uuid', 'job', 'outcome', 'detail'],
        results.map((r) => [r.uuid, r.jobId ?? '-', r.outcome, r.detail ?? '']),
      ),
    );
    printLine(
      io,
      `deprovision: ${count('enqueued')} enqueued, ${count('active')} already active, ${count('failed')} failed`,
    );
  }
  const follow = results
    .filter((r) => r.jobId && r.outcome !== 'failed')
    .map((r) => ({ jobId: r.jobId as string, uuid: r.uuid }));
  return followAndFinish(
    ctx,
    io,
    follow,
    {
      wait: options.wait,
      json: options.json,
      timeoutSeconds: options.timeout,
      label: 'deprovision',
    },
    results,
    count('failed'),
  );
}
