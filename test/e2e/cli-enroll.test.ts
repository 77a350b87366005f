import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { CloudFormationClient, CreateStackCommand } from '@aws-sdk/client-cloudformation';
import { ListTargetsForPolicyCommand } from '@aws-sdk/client-iot';
import { stackFile } from '../../src/local/stack-file';
import { motoEndpoint, newUuid, REGION } from '../helpers/aws';
import {
  type CliStack,
  expectProvisioned,
  parseJson,
  runCapture,
  startCliStack,
  thingCertificates,
} from '../helpers/cli-harness';

const run = promisify(execFile);
const ROOT = path.join(__dirname, '..', '..');

interface EnrollJson {
  enqueued: number;
  skipped: number;
  failed: number;
  jobs: { jobId: string; uuid: string }[];
  skippedDevices: { uuid: string; reason: string }[];
  failures: { uuid: string; code: string }[];
  wait?: { succeeded: number; failed: unknown[]; pending: unknown[] };
}

describe('provisioner CLI: enroll, jobs, devices, deprovision', () => {
  let cli: CliStack;

  beforeAll(async () => {
    cli = await startCliStack(50);
  });
  afterAll(async () => {
    await cli?.stop();
  });

  async function policyCertificates(): Promise<number> {
    const out = await cli.stack.aws.iot.send(
      new ListTargetsForPolicyCommand({ policyName: cli.stack.policyName }),
    );
    return out.targets?.length ?? 0;
  }

  it('enrolls a 50-device fleet with --wait: every device gets one active certificate and its variables', async () => {
    const result = await cli.run(['enroll', '--fleet', cli.fleet, '--wait']);

    expect(result.stderr).toContain('enroll: 50/50 (100%)');
    expect(result.stdout).toContain('enrolled: 50 enqueued, 0 skipped, 0 failed');
    expect(result.stdout).toContain('finished: 50 succeeded, 0 failed');
    expect(result.code).toBe(0);
    for (const uuid of cli.devices) await expectProvisioned(cli, uuid);
    expect(await policyCertificates()).toBe(50);
  });

  it('skips every device on a second run and issues nothing new in IoT', async () => {
    const before = await Promise.all(cli.devices.map((u) => thingCertificates(cli.stack, u)));

    const result = await cli.run(['enroll', '--fleet', cli.fleet, '--wait', '--json']);

    const summary = parseJson<EnrollJson>(result);
    expect(result.code).toBe(0);
    expect(summary).toMatchObject({ enqueued: 0, skipped: 50, failed: 0, jobs: [] });
    expect(summary.skippedDevices.every((s) => s.reason === 'provisioned')).toBe(true);
    const after = await Promise.all(cli.devices.map((u) => thingCertificates(cli.stack, u)));
    expect(after).toEqual(before);
    expect(await policyCertificates()).toBe(50);
  });

  it('plans without writing on --dry-run, honouring --online-only', async () => {
    const added = [newUuid(), newUuid()];
    cli.stack.sim?.addDevice(cli.fleet, { uuid: added[0] as string, isOnline: true });
    cli.stack.sim?.addDevice(cli.fleet, { uuid: added[1] as string, isOnline: false });

    const all = await cli.run(['enroll', '--fleet', cli.fleet, '--dry-run', '--json']);
    const online = await cli.run(['enroll', '--fleet', cli.fleet, '--dry-run', '--online-only']);

    expect(all.code).toBe(0);
    expect(parseJson<{ wouldEnqueue: string[] }>(all).wouldEnqueue.sort()).toEqual(
      [...added].sort(),
    );
    expect(online.stdout).toContain(added[0]);
    expect(online.stdout).not.toContain(added[1]);
    expect(online.stdout).toContain('dry run: 1 would be enqueued, 40 skipped, 0 failed');
    const shown = await cli.run(['devices', 'show', added[0] as string]);
    expect(shown.code).toBe(1);
    expect(shown.stderr).toContain('never enrolled');
  });

  it('enrolls only the devices of a --uuids file and fails the ones not in the fleet', async () => {
    const extra = newUuid();
    cli.stack.sim?.addDevice(cli.fleet, { uuid: extra });
    const stranger = newUuid();
    const file = path.join(path.dirname(cli.stateFile), 'uuids.txt');
    writeFileSync(file, `# two devices\n${extra}\n\n${stranger}\n`);

    const result = await cli.run([
      'enroll',
      '--fleet',
      cli.fleet,
      '--uuids',
      file,
      '--wait',
      '--json',
    ]);

    const summary = parseJson<EnrollJson>(result);
    expect(result.code).toBe(1);
    expect(summary).toMatchObject({ enqueued: 1, skipped: 0, failed: 1 });
    expect(summary.jobs.map((j) => j.uuid)).toEqual([extra]);
    expect(summary.failures).toEqual([
      expect.objectContaining({ uuid: stranger, code: 'not_in_fleet' }),
    ]);
    expect(summary.wait?.succeeded).toBe(1);
    await expectProvisioned(cli, extra);
  });

  it('lists and shows jobs and devices as tables and as JSON', async () => {
    const uuid = cli.devices[0] as string;

    const list = await cli.run([
      'jobs',
      'list',
      '--status',
      'succeeded',
      '--limit',
      '500',
      '--json',
    ]);
    const table = await cli.run(['jobs', 'list', '--fleet', cli.fleet, '--limit', '5']);
    const byUuid = await cli.run(['jobs', 'show', uuid, '--json']);
    const device = await cli.run(['devices', 'show', uuid, '--json']);
    const deviceText = await cli.run(['devices', 'show', uuid]);

    const jobs = parseJson<{ jobs: { uuid: string; status: string; jobId: string }[] }>(list).jobs;
    expect(jobs).toHaveLength(51);
    expect(jobs.every((j) => j.status === 'succeeded')).toBe(true);
    expect(table.code).toBe(0);
    expect(table.stdout.split('\n')[0]).toMatch(
      /^JOB\s+ACTION\s+UUID\s+STATUS\s+ATTEMPTS\s+UPDATED/,
    );
    expect(table.stdout).toContain('5 job(s) (limit reached: --limit)');
    const job = parseJson<{ jobId: string; status: string; result: { certificateId: string } }>(
      byUuid,
    );
    expect(job).toMatchObject({ status: 'succeeded', uuid });
    const certificates = await thingCertificates(cli.stack, uuid);
    expect(job.result.certificateId).toBe(certificates?.[0]?.id);
    expect(parseJson(device)).toMatchObject({
      uuid,
      state: 'provisioned',
      certificateId: job.result.certificateId,
      lastJobId: job.jobId,
    });
    expect(deviceText.stdout).toMatch(/state:\s+provisioned/);
    const byId = await cli.run(['jobs', 'show', job.jobId]);
    expect(byId.stdout).toMatch(new RegExp(`certificate:\\s+${job.result.certificateId}`));
  });

  it('deprovisions a device after confirmation and does nothing when the answer is no', async () => {
    const uuid = cli.devices[1] as string;

    const declined = await cli.run(['deprovision', uuid], { stdin: 'n\n' });
    expect(declined.code).toBe(1);
    expect(declined.stderr).toContain('aborted');
    expect(await thingCertificates(cli.stack, uuid)).toHaveLength(1);

    const accepted = await cli.run(['deprovision', uuid, '--wait'], { stdin: 'yes\n' });

    expect(accepted.code).toBe(0);
    expect(accepted.stdout).toContain('deprovision: 1 enqueued, 0 already active, 0 failed');
    expect(await thingCertificates(cli.stack, uuid)).toBeUndefined();
    expect(cli.stack.sim?.deviceEnvVars(uuid)).not.toHaveProperty('AWS_CERT');
    const device = parseJson(await cli.run(['devices', 'show', uuid, '--json']));
    expect(device).toMatchObject({ state: 'deprovisioned', thingName: null });
  });

  it('answers usage and configuration errors with exit code 2 and one clear line', async () => {
    const missing = await runCapture(['jobs', 'list', '--state-file', '/nonexistent/stack.json']);
    const unknownOption = await cli.run(['enroll', '--fleet', cli.fleet, '--bogus']);
    const badNumber = await cli.run(['enroll', '--fleet', cli.fleet, '--concurrency', '0']);
    const noConfirm = await cli.run(['deprovision', '--fleet', cli.fleet]);
    const bothTargets = await cli.run(['jobs', 'list', '--stack', 'x']);
    const badStatus = await cli.run(['jobs', 'list', '--status', 'done']);

    expect(missing).toMatchObject({ code: 2, stdout: '' });
    expect(missing.stderr).toContain('no local stack state at /nonexistent/stack.json');
    expect(unknownOption.code).toBe(2);
    expect(unknownOption.stderr).toContain("unknown option '--bogus'");
    expect(badNumber.code).toBe(2);
    expect(badNumber.stderr).toContain('--concurrency must be an integer >= 1');
    expect(noConfirm.code).toBe(2);
    expect(noConfirm.stderr).toContain('pass --yes');
    expect(bothTargets.code).toBe(2);
    expect(badStatus.code).toBe(2);
    expect(badStatus.stderr).toContain('--status must be one of');
  });

  it('answers exit code 2 when balena refuses the operator key', async () => {
    const file = path.join(path.dirname(cli.stateFile), 'wrong-key.json');
    writeFileSync(
      file,
      JSON.stringify({
        ...stackFile(cli.stack, undefined),
        balena: { apiUrl: cli.stack.balenaApiUrl, userApiKey: 'not-a-key' },
      }),
    );

    const result = await runCapture(['enroll', '--fleet', cli.fleet, '--state-file', file]);

    expect(result.code).toBe(2);
    expect(result.stderr).toContain('API key');
  });

  it('targets a deployed stack through its CloudFormation outputs and needs BALENA_API_KEY for balena', async () => {
    const saved = { id: process.env.AWS_ACCESS_KEY_ID, secret: process.env.AWS_SECRET_ACCESS_KEY };
    process.env.AWS_ACCESS_KEY_ID = 'testing';
    process.env.AWS_SECRET_ACCESS_KEY = 'testing';
    const cloudformation = new CloudFormationClient({
      region: REGION,
      endpoint: motoEndpoint(),
      credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
    });
    try {
      const name = `provisioner-${newUuid().slice(0, 8)}`;
      const output = (value: string) => ({ Value: value });
      await cloudformation.send(
        new CreateStackCommand({
          StackName: name,
          TemplateBody: JSON.stringify({
            Resources: { Marker: { Type: 'AWS::SQS::Queue' } },
            Outputs: {
              TableName: output(cli.stack.tableName),
              QueueUrl: output(cli.stack.queueUrl),
              DlqUrl: output(cli.stack.dlqUrl),
              IotPolicyName: output(cli.stack.policyName),
            },
          }),
        }),
      );
      const env = { AWS_REGION: REGION, AWS_ENDPOINT_URL: motoEndpoint() };

      const listed = await runCapture(['--stack', name, 'jobs', 'list', '--json'], { env });
      const noKey = await runCapture(['enroll', '--stack', name, '--fleet', cli.fleet], { env });
      const noStack = await runCapture(['jobs', 'list'], {
        env: { ...env, PROVISIONER_STACK: `${name}-missing` },
      });

      expect(listed.code).toBe(0);
      expect(parseJson<{ jobs: unknown[] }>(listed).jobs.length).toBeGreaterThanOrEqual(51);
      expect(noKey.code).toBe(2);
      expect(noKey.stderr).toContain('BALENA_API_KEY');
      expect(noStack.code).toBe(2);
      expect(noStack.stderr).toContain(`stack ${name}-missing not found`);
    } finally {
      cloudformation.destroy();
      process.env.AWS_ACCESS_KEY_ID = saved.id;
      process.env.AWS_SECRET_ACCESS_KEY = saved.secret;
      if (saved.id === undefined) delete process.env.AWS_ACCESS_KEY_ID;
      if (saved.secret === undefined) delete process.env.AWS_SECRET_ACCESS_KEY;
    }
  });

  it('runs as the package bin: --help explains every command and JSON output parses', async () => {
    const bin = path.join(ROOT, 'bin', 'provisioner.js');

    const help = await run(process.execPath, [bin, '--help'], { cwd: ROOT });
    const listed = await run(
      process.execPath,
      [bin, 'jobs', 'list', '--status', 'failed', '--json', '--state-file', cli.stateFile],
      { cwd: ROOT },
    );

    for (const command of ['enroll', 'jobs', 'devices', 'dlq', 'deprovision', 'reconcile']) {
      expect(help.stdout).toMatch(new RegExp(`^\\s+${command}\\b.*\\S`, 'm'));
    }
    expect(help.stdout).toContain('Exit codes:');
    expect(JSON.parse(listed.stdout)).toEqual({ jobs: [] });
    const usage = await run(process.execPath, [bin, 'enroll'], { cwd: ROOT }).catch(
      (error: { code: number; stderr: string }) => error,
    );
    expect(usage).toMatchObject({ code: 2 });
    expect((usage as { stderr: string }).stderr).toContain("required option '--fleet <slug>'");
  });
});
