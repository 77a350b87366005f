import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { AppError } from '../shared/errors';
import { deprovision } from './deprovision';
import { listDlq, replayDlq } from './dlq';
import { enroll } from './enroll';
import { CommandFailedError, EXIT_FAILED, EXIT_OK, EXIT_USAGE, UsageError } from './errors';
import type { CliIo } from './io';
import { listJobs, showDevice, showJob } from './jobs';
import { reconcile } from './reconcile';
import {
  type CliContext,
  DEFAULT_STATE_FILE,
  openContext,
  resolveTarget,
  type TargetOptions,
} from './target';

export type { CliIo } from './io';

const GLOBAL_HELP = `
Target:
  By default the CLI works on the local stack described by ${DEFAULT_STATE_FILE} (written by
  \`npm start\`). With --stack <name> (or PROVISIONER_STACK) it works on a deployed stack: the
  table, queue, DLQ and IoT policy come from the stack's CloudFormation outputs, AWS access from
  your usual credentials (AWS_PROFILE, environment, SSO...), balena access from BALENA_API_KEY.

Environment:
  PROVISIONER_STACK       deployed stack name (same as --stack)
  PROVISIONER_STATE_FILE  local stack state file (same as --state-file)
  AWS_REGION              region of the deployed stack (same as --region)
  BALENA_API_KEY          your balena API key (deployed stacks; enroll, reconcile, --fleet)
  BALENA_API_URL          balena API (default https://api.balena-cloud.com)

Exit codes:
  0 ok, 1 something failed (a job, a device, drift left unrepaired), 2 usage or configuration error`;

function integer(name: string, min: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min) {
      throw new InvalidArgumentError(`${name} must be an integer >= ${min}`);
    }
    return n;
  };
}

function positive(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('must be a positive number');
  return n;
}

/**
 * Runs the `provisioner` CLI on `argv` (without the node and script names) and answers the exit
 * code: 0 ok, 1 something failed, 2 usage or configuration error. Nothing here exits the process.
 */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  let exitCode = EXIT_OK;
  const program = new Command('provisioner');

  /** Wraps a command: resolve the target, build the clients, run, close the clients. */
  const action =
    <A extends unknown[]>(run: (ctx: CliContext, ...args: A) => Promise<number>) =>
    async (...args: unknown[]) => {
      const command = args[args.length - 1] as Command;
      const globals = command.optsWithGlobals() as TargetOptions;
      const target = await resolveTarget(globals, io);
      const ctx = openContext(target, globals);
      try {
        exitCode = await run(ctx, ...(args.slice(0, -1) as A));
      } finally {
        ctx.close();
      }
    };

  program
    .description(
      'Operate the balena ⇄ AWS IoT Core provisioner: enroll fleets, follow jobs, replay the DLQ, repair drift.',
    )
    .exitOverride()
    .configureOutput({
      writeOut: (text) => io.stdout.write(text),
      writeErr: (text) => io.stderr.write(text),
    })
    .showHelpAfterError('(run with --help for usage)')
    .option('--state-file <path>', `local stack state file (default: ${DEFAULT_STATE_FILE})`)
    .option('--stack <name>', 'deployed stack (CloudFormation) to work on instead of the local one')
    .option('--region <region>', 'AWS region of the deployed stack')
    .option('--policy-name <name>', 'IoT policy name, when the stack has no IotPolicyName output')
    .addHelpText('after', GLOBAL_HELP);

  const timeout = () =>
    new Option('--timeout <seconds>', 'with --wait: give up waiting after this long')
      .default(3600)
      .argParser(integer('--timeout', 1));
  const concurrency = (fallback: number) =>
    new Option('--concurrency <n>', 'parallel batches or requests')
      .default(fallback)
      .argParser(integer('--concurrency', 1));

  program
    .command('enroll')
    .summary('Enroll a whole fleet: jobs and messages in batches, resumable.')
    .description(
      "Provision every device of a fleet: lists it through balena, skips devices already provisioned or with an active job (so a re-run resumes safely), records jobs in batched transactions and sends SQS messages in batches of 10. Prints 'enrolled: N enqueued, M skipped, K failed'.",
    )
    .requiredOption('--fleet <slug>', 'balena fleet slug, e.g. myorg/myfleet')
    .option('--online-only', 'only devices balena reports online')
    .option('--uuids <file>', 'only these devices: a file with one uuid per line (# comments)')
    .option('--dry-run', 'show what would be enqueued and write nothing')
    .option('--wait', 'follow the jobs to their end; exit 1 if any failed')
    .addOption(timeout())
    .addOption(concurrency(4))
    .option('--json', 'print one JSON document instead of text')
    .action(action((ctx, opts: Parameters<typeof enroll>[2]) => enroll(ctx, io, opts)));

  const jobs = program
    .command('jobs')
    .description('Inspect jobs: list (by status, by fleet) and show one.');
  jobs
    .command('list')
    .description('List jobs, newest first.')
    .option('--status <status>', 'queued, running, succeeded or failed')
    .option('--fleet <slug>', "only jobs of this fleet's devices (asks balena)")
    .addOption(
      new Option('--limit <n>', 'at most this many jobs')
        .default(100)
        .argParser(integer('--limit', 1)),
    )
    .option('--json', 'print one JSON document instead of a table')
    .action(action((ctx, opts: Parameters<typeof listJobs>[2]) => listJobs(ctx, io, opts)));
  jobs
    .command('show')
    .description("Show one job; given a device uuid, the device's active or latest job.")
    .argument('<jobId|uuid>', 'job id, or balena device uuid')
    .option('--json', 'print one JSON document instead of text')
    .action(action((ctx, id: string, opts: { json?: boolean }) => showJob(ctx, io, id, opts.json)));

  const devices = program
    .command('devices')
    .description("Inspect devices: show one device's record and latest job.");
  devices
    .command('show')
    .description("Show a device's record (state, thing, certificate) and its latest job.")
    .argument('<uuid>', 'balena device uuid')
    .option('--json', 'print one JSON document instead of text')
    .action(
      action((ctx, uuid: string, opts: { json?: boolean }) => showDevice(ctx, io, uuid, opts.json)),
    );

  const dlq = program
    .command('dlq')
    .description('Inspect (list) and replay the dead-letter queue.');
  dlq
    .command('list')
    .summary('List DLQ messages with their jobs, without consuming them.')
    .description(
      'List the messages in the DLQ with their job (uuid, action, receive count, last error). Messages are only peeked: each is hidden for a moment and made visible again, never deleted (SQS counts the peek as a receive).',
    )
    .addOption(
      new Option('--max <n>', 'stop after this many messages')
        .default(1000)
        .argParser(integer('--max', 1)),
    )
    .option('--json', 'print one JSON document instead of a table')
    .action(action((ctx, opts: { json?: boolean; max: number }) => listDlq(ctx, io, opts)));
  dlq
    .command('replay')
    .summary('Move DLQ messages back to the work queue and requeue their jobs.')
    .description(
      'Move DLQ messages back to the work queue and put their jobs back to queued (requeue, send, then delete: safe to interrupt and re-run). A message whose device has since got another job, or whose job already succeeded, is deleted and reported, not run.',
    )
    .option('--all', 'replay every message')
    .option('--job <jobId...>', 'replay only the messages of these jobs')
    .addOption(new Option('--rate <n>', 'at most n messages per second').argParser(positive))
    .option('--wait', 'follow the replayed jobs to their end; exit 1 if any failed')
    .addOption(timeout())
    .option('--json', 'print one JSON document instead of text')
    .action(action((ctx, opts: Parameters<typeof replayDlq>[2]) => replayDlq(ctx, io, opts)));

  program
    .command('deprovision')
    .summary('Deprovision a device or a whole fleet (asks unless --yes).')
    .description(
      'Deprovision one device, or every device of a fleet the service has provisioned: retire its certificates, delete its thing, remove its AWS_CERT/AWS_PRIVATE_KEY variables. Asks for confirmation unless --yes.',
    )
    .argument('[uuid]', 'balena device uuid')
    .option('--fleet <slug>', 'every device of this fleet instead of one')
    .option('-y, --yes', 'do not ask for confirmation')
    .option('--wait', 'follow the jobs to their end; exit 1 if any failed')
    .addOption(timeout())
    .addOption(concurrency(8))
    .option('--json', 'print one JSON document instead of text')
    .action(
      action((ctx, uuid: string | undefined, opts: Parameters<typeof deprovision>[3]) =>
        deprovision(ctx, io, uuid, opts),
      ),
    );

  program
    .command('reconcile')
    .summary('Report (and --fix) drift between balena, the job table and IoT Core.')
    .description(
      'Report drift between balena, the job table and IoT Core: thing_missing, certificate_inactive, multiple_certificates, variable_mismatch (AWS_CERT is not the attached certificate), device_gone (thing of a device balena no longer has), orphan_certificate (on the policy, on no thing). Exits 1 while drift is left. --fix enqueues provision (rotate) or deprovision jobs and retires orphan certificates of the service policy; it never touches things or certificates the service does not manage.',
    )
    .option('--fleet <slug>', 'only this fleet (plus devices balena no longer has)')
    .option('--fix', 'repair what was found')
    .option('--wait', 'with --fix: follow the repair jobs to their end')
    .addOption(timeout())
    .addOption(concurrency(8))
    .option('--json', 'print {"findings": [...], "fixed": [...]} instead of tables')
    .action(action((ctx, opts: Parameters<typeof reconcile>[2]) => reconcile(ctx, io, opts)));

  try {
    await program.parseAsync([...argv], { from: 'user' });
    return exitCode;
  } catch (error: unknown) {
    return reportError(io, error);
  }
}

/** One clear line on stderr and the exit code for an error that ended a command. */
function reportError(io: CliIo, error: unknown): number {
  if (error instanceof CommanderError) {
    // Commander has written its own message (or the help) already.
    return error.code === 'commander.helpDisplayed' || error.code === 'commander.version'
      ? EXIT_OK
      : EXIT_USAGE;
  }
  const message = error instanceof Error ? error.message : String(error);
  if (error instanceof Error && error.name === 'CredentialsProviderError') {
    // The SDK's credential error class lives in a transitive package; its name is stable.
    io.stderr.write(
      `provisioner: no AWS credentials (${message}): set AWS_PROFILE, run \`aws sso login\`, or export AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY\n`,
    );
    return EXIT_USAGE;
  }
  if (error instanceof Error && /^Region is missing/.test(error.message)) {
    io.stderr.write('provisioner: no AWS region: pass --region or set AWS_REGION\n');
    return EXIT_USAGE;
  }
  if (error instanceof UsageError || isBalenaKeyRefused(error)) {
    io.stderr.write(`provisioner: ${message}\n`);
    return EXIT_USAGE;
  }
  io.stderr.write(`provisioner: ${message}\n`);
  if (
    !(error instanceof CommandFailedError) &&
    io.env.PROVISIONER_DEBUG &&
    error instanceof Error
  ) {
    io.stderr.write(`${error.stack ?? ''}\n`);
  }
  return EXIT_FAILED;
}

/** balena refuses the operator's key: a configuration problem, not a failed operation. */
function isBalenaKeyRefused(error: unknown): boolean {
  return error instanceof AppError && error.code === 'balena_unauthorized';
}
