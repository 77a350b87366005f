import {
  AttachPolicyCommand,
  AttachThingPrincipalCommand,
  CreateKeysAndCertificateCommand,
  CreateThingCommand,
  DeleteThingCommand,
  DetachThingPrincipalCommand,
  UpdateCertificateCommand,
} from '@aws-sdk/client-iot';
import { newUuid } from '../helpers/aws';
import {
  type CliStack,
  certificateExists,
  expectProvisioned,
  parseJson,
  startCliStack,
  thingCertificates,
} from '../helpers/cli-harness';

interface Finding {
  kind: string;
  uuid: string | null;
  detail: string;
  certificateArn?: string;
}

interface Fix {
  action: string;
  uuid: string | null;
  outcome: string;
  certificateArn?: string;
}

describe('provisioner CLI: reconcile reports drift and --fix repairs it', () => {
  let cli: CliStack;

  beforeAll(async () => {
    cli = await startCliStack(8);
    const enrolled = await cli.run(['enroll', '--fleet', cli.fleet, '--wait']);
    if (enrolled.code !== 0)
      throw new Error(`enroll failed:\n${enrolled.stdout}${enrolled.stderr}`);
  });
  afterAll(async () => {
    await cli?.stop();
  });

  it('finds no drift on a freshly enrolled fleet', async () => {
    const result = await cli.run(['reconcile', '--fleet', cli.fleet]);

    expect(result.stdout).toContain('no drift found');
    expect(result.code).toBe(0);
  });

  it('reports each planted drift, repairs it with --fix, and leaves what it does not manage alone', async () => {
    const { iot } = cli.stack.aws;
    const [thingGone, twoCerts, noVariable, inactive, removed] = cli.devices as [
      string,
      string,
      string,
      string,
      string,
    ];
    // A thing deleted behind the service's back: its certificate is left on the policy.
    const [lost] = (await thingCertificates(cli.stack, thingGone)) ?? [];
    await iot.send(new DetachThingPrincipalCommand({ thingName: thingGone, principal: lost?.arn }));
    await iot.send(new DeleteThingCommand({ thingName: thingGone }));
    // A second certificate on a thing.
    const second = await iot.send(new CreateKeysAndCertificateCommand({ setAsActive: true }));
    await iot.send(
      new AttachThingPrincipalCommand({ thingName: twoCerts, principal: second.certificateArn }),
    );
    // A variable removed by hand.
    cli.stack.sim?.removeDeviceEnvVar(noVariable, 'AWS_CERT');
    // A certificate deactivated.
    const [deactivated] = (await thingCertificates(cli.stack, inactive)) ?? [];
    await iot.send(
      new UpdateCertificateCommand({ certificateId: deactivated?.id, newStatus: 'INACTIVE' }),
    );
    // A device deleted from balena.
    cli.stack.sim?.removeDevice(removed);
    // A certificate on the service's policy that no thing has.
    const orphan = await iot.send(new CreateKeysAndCertificateCommand({ setAsActive: true }));
    await iot.send(
      new AttachPolicyCommand({ policyName: cli.stack.policyName, target: orphan.certificateArn }),
    );
    // A thing (uuid-named, with a certificate) this service knows nothing about.
    const foreign = newUuid();
    const foreignCert = await iot.send(new CreateKeysAndCertificateCommand({ setAsActive: true }));
    await iot.send(new CreateThingCommand({ thingName: foreign }));
    await iot.send(
      new AttachThingPrincipalCommand({
        thingName: foreign,
        principal: foreignCert.certificateArn,
      }),
    );

    const report = await cli.run(['reconcile', '--json']);

    expect(report.code).toBe(1);
    const findings = parseJson<{ findings: Finding[]; fixed: Fix[] }>(report);
    expect(findings.fixed).toEqual([]);
    const found = findings.findings.map((f) => `${f.kind} ${f.uuid ?? f.certificateArn}`).sort();
    expect(found).toEqual(
      [
        `thing_missing ${thingGone}`,
        `orphan_certificate ${thingGone}`,
        `multiple_certificates ${twoCerts}`,
        `variable_mismatch ${noVariable}`,
        `certificate_inactive ${inactive}`,
        `device_gone ${removed}`,
        `orphan_certificate ${orphan.certificateArn}`,
      ].sort(),
    );
    expect(
      findings.findings.find((f) => f.kind === 'orphan_certificate' && f.uuid === thingGone)
        ?.certificateArn,
    ).toBe(lost?.arn);
    const table = await cli.run(['reconcile', '--fleet', cli.fleet]);
    expect(table.code).toBe(1);
    expect(table.stdout).toMatch(
      new RegExp(`variable_mismatch\\s+${noVariable}\\s+AWS_CERT is not set`),
    );
    expect(table.stdout).toMatch(new RegExp(`device_gone\\s+${removed}`));
    expect(table.stdout).toContain('reconcile: 7 finding(s)');

    const fixed = await cli.run(['reconcile', '--fix', '--wait', '--json']);

    expect(fixed.code).toBe(0);
    const fixes = parseJson<{ fixed: Fix[]; wait: { succeeded: number } }>(fixed);
    expect(
      fixes.fixed.map((f) => `${f.action} ${f.outcome} ${f.uuid ?? f.certificateArn}`).sort(),
    ).toEqual(
      [
        `provision enqueued ${thingGone}`,
        `provision enqueued ${twoCerts}`,
        `provision enqueued ${noVariable}`,
        `provision enqueued ${inactive}`,
        `deprovision enqueued ${removed}`,
        `retire_certificate retired ${thingGone}`,
        `retire_certificate retired ${orphan.certificateArn}`,
      ].sort(),
    );
    expect(fixes.wait.succeeded).toBe(5);
    for (const uuid of [thingGone, twoCerts, noVariable, inactive])
      await expectProvisioned(cli, uuid);
    expect(await certificateExists(cli.stack, lost?.id as string)).toBe(false);
    expect(await certificateExists(cli.stack, second.certificateId as string)).toBe(false);
    expect(await certificateExists(cli.stack, deactivated?.id as string)).toBe(false);
    expect(await certificateExists(cli.stack, orphan.certificateId as string)).toBe(false);
    expect(await thingCertificates(cli.stack, removed)).toBeUndefined();
    const device = parseJson(await cli.run(['devices', 'show', removed, '--json']));
    expect(device).toMatchObject({ state: 'deprovisioned' });
    // Untouched: the thing and certificate the service did not create.
    expect((await thingCertificates(cli.stack, foreign))?.map((c) => c.status)).toEqual(['ACTIVE']);

    const clean = await cli.run(['reconcile', '--json']);
    expect(clean.code).toBe(0);
    expect(parseJson(clean)).toMatchObject({ findings: [], fixed: [] });
  });

  it('deprovisions a whole fleet with --yes and leaves no drift behind', async () => {
    const inFleet = cli.devices.slice(0, 4).concat(cli.devices.slice(5));

    const result = await cli.run([
      'deprovision',
      '--fleet',
      cli.fleet,
      '--yes',
      '--wait',
      '--json',
    ]);

    expect(result.code).toBe(0);
    const { results, wait } = parseJson<{
      results: { uuid: string; outcome: string }[];
      wait: { succeeded: number };
    }>(result);
    expect(results.map((r) => r.uuid).sort()).toEqual([...inFleet].sort());
    expect(results.every((r) => r.outcome === 'enqueued')).toBe(true);
    expect(wait.succeeded).toBe(inFleet.length);
    for (const uuid of inFleet) {
      expect(await thingCertificates(cli.stack, uuid)).toBeUndefined();
      expect(cli.stack.sim?.deviceEnvVars(uuid)).not.toHaveProperty('AWS_CERT');
    }
    const again = await cli.run(['deprovision', '--fleet', cli.fleet, '--yes']);
    expect(again.stdout).toContain(`deprovision: nothing to do for fleet ${cli.fleet}`);
    expect((await cli.run(['reconcile'])).code).toBe(0);
  });
});
