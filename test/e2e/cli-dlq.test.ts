import { writeFileSync } from 'node:fs';
import path from 'node:path';
import {
  type CliStack,
  eventually,
  expectProvisioned,
  parseJson,
  queueDepth,
  startCliStack,
  thingCertificates,
} from '../helpers/cli-harness';

interface DlqEntry {
  jobId: string;
  uuid: string;
  action: string;
  status: string;
  receiveCount: number;
  lastError: { code: string; message: string } | null;
}

interface ReplayResult {
  jobId: string;
  uuid: string;
  outcome: string;
}

describe('provisioner CLI: failures end in the DLQ and replay brings them back', () => {
  let cli: CliStack;

  beforeAll(async () => {
    cli = await startCliStack(10);
  });
  afterAll(async () => {
    await cli?.stop();
  });

  it('lists, then replays the DLQ once the fault is gone; a superseded message is dropped', async () => {
    const broken = cli.devices.slice(0, 4);
    const healthy = cli.devices.slice(4);
    // balena answers 503 for these devices until cleared: retries run out, messages go to the DLQ.
    cli.stack.sim?.addFault({ kind: 'status', status: 503, deviceUuids: broken });

    const enrolled = await cli.run(['enroll', '--fleet', cli.fleet, '--wait']);

    expect(enrolled.code).toBe(1);
    expect(enrolled.stdout).toContain('enrolled: 10 enqueued, 0 skipped, 0 failed');
    expect(enrolled.stdout).toContain('finished: 6 succeeded, 4 failed');
    for (const uuid of broken)
      expect(enrolled.stdout).toMatch(new RegExp(`${uuid}.*retries_exhausted`));
    for (const uuid of healthy) await expectProvisioned(cli, uuid);

    // The worker fails the job first; SQS moves the message on its next receive.
    await eventually(async () => (await queueDepth(cli.stack, cli.stack.dlqUrl)) === 4);
    const listed = await cli.run(['dlq', 'list', '--json']);
    const listedAgain = await cli.run(['dlq', 'list']);

    expect(listed.code).toBe(0);
    const entries = parseJson<{ messages: DlqEntry[] }>(listed).messages;
    expect(entries.map((e) => e.uuid).sort()).toEqual([...broken].sort());
    for (const entry of entries) {
      expect(entry).toMatchObject({ action: 'provision', status: 'failed' });
      expect(entry.receiveCount).toBeGreaterThanOrEqual(2);
      expect(entry.lastError?.code).toBe('retries_exhausted');
      expect(entry.lastError?.message).toContain('balena_unavailable');
    }
    expect(listedAgain.stdout).toContain('4 message(s) in the DLQ');
    expect(await queueDepth(cli.stack, cli.stack.dlqUrl)).toBe(4);

    cli.stack.sim?.clearFaults();
    // An operator enrolls one failed device again before replaying: its old message is stale.
    const [superseded, ...replayable] = broken as [string, ...string[]];
    const file = path.join(path.dirname(cli.stateFile), 'one.txt');
    writeFileSync(file, `${superseded}\n`);
    const again = await cli.run(['enroll', '--fleet', cli.fleet, '--uuids', file, '--wait']);
    expect(again.code).toBe(0);
    const supersededCertificate = await expectProvisioned(cli, superseded);

    const replay = await cli.run(['dlq', 'replay', '--all', '--rate', '4', '--wait', '--json']);

    expect(replay.code).toBe(0);
    const replayed = parseJson<{ results: ReplayResult[]; wait: { succeeded: number } }>(replay);
    const outcomes = Object.fromEntries(replayed.results.map((r) => [r.uuid, r.outcome]));
    expect(outcomes).toEqual({
      [superseded]: 'superseded',
      ...Object.fromEntries(replayable.map((u) => [u, 'replayed'])),
    });
    expect(replayed.wait.succeeded).toBe(3);
    // 4 messages at 4/s: the last one starts no earlier than 0.75 s after the first.
    expect(replay.ms).toBeGreaterThanOrEqual(750);
    for (const uuid of replayable) await expectProvisioned(cli, uuid);
    expect((await thingCertificates(cli.stack, superseded))?.[0]?.id).toBe(
      supersededCertificate.id,
    );
    expect(await queueDepth(cli.stack, cli.stack.dlqUrl)).toBe(0);
    const empty = await cli.run(['dlq', 'list']);
    expect(empty.stdout).toContain('the DLQ is empty');
    const failed = parseJson<{ jobs: unknown[] }>(
      await cli.run(['jobs', 'list', '--status', 'failed', '--json']),
    );
    // Only the superseded device's first job stays failed; the replayed ones succeeded.
    expect(failed.jobs).toHaveLength(1);
  });

  it('replays only the named job and reports a job id that is not in the DLQ', async () => {
    const [target, other] = cli.devices.slice(0, 2) as [string, string];
    // Deprovision both while balena fails for them: IoT is cleaned, the variables are not.
    cli.stack.sim?.addFault({ kind: 'status', status: 503, deviceUuids: [target, other] });
    const deprovisioned = await cli.run(['deprovision', target, '--yes', '--json']);
    const deprovisionOther = await cli.run(['deprovision', other, '--yes', '--json']);
    const jobOf = (r: typeof deprovisioned) =>
      parseJson<{ results: { jobId: string }[] }>(r).results[0]?.jobId as string;
    const targetJob = jobOf(deprovisioned);
    await eventually(async () => (await queueDepth(cli.stack, cli.stack.dlqUrl)) === 2);
    cli.stack.sim?.clearFaults();

    const replay = await cli.run(['dlq', 'replay', '--job', targetJob, 'not-a-job', '--wait']);

    expect(replay.code).toBe(1);
    expect(replay.stdout).toMatch(new RegExp(`${targetJob}\\s+${target}\\s+replayed`));
    expect(replay.stdout).toMatch(/not-a-job\s+-\s+failed\s+no message for this job in the DLQ/);
    expect(replay.stdout).toContain('finished: 1 succeeded, 0 failed');
    expect(cli.stack.sim?.deviceEnvVars(target)).not.toHaveProperty('AWS_CERT');
    expect(cli.stack.sim?.deviceEnvVars(other)).toHaveProperty('AWS_CERT');
    expect(await queueDepth(cli.stack, cli.stack.dlqUrl)).toBe(1);
    const left = parseJson<{ messages: DlqEntry[] }>(await cli.run(['dlq', 'list', '--json']));
    expect(left.messages.map((m) => m.uuid)).toEqual([other]);
    expect(jobOf(deprovisionOther)).toBe(left.messages[0]?.jobId);
  });
});
