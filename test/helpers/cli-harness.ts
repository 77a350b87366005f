import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { DescribeCertificateCommand, ResourceNotFoundException } from '@aws-sdk/client-iot';
import { GetQueueAttributesCommand } from '@aws-sdk/client-sqs';
import { runCli } from '../../src/cli/main';
import type { SimDeviceSeed } from '../../src/local/balena-sim';
import { type LocalStack, type LocalStackOptions, startLocalStack } from '../../src/local/stack';
import { stackFile } from '../../src/local/stack-file';
import { motoEndpoint, newUuid } from './aws';
import { fromBase64, type ThingCertificate, thingCertificates } from './stack';

/** Collects what a CLI run writes. */
class Capture extends Writable {
  text = '';
  override _write(chunk: Buffer | string, _enc: BufferEncoding, done: () => void): void {
    this.text += chunk.toString();
    done();
  }
}

export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  readonly ms: number;
}

export interface RunOptions {
  /** Text fed to confirmation prompts. */
  readonly stdin?: string;
  readonly env?: Record<string, string | undefined>;
  /** Leave out `--state-file` (to test target resolution). */
  readonly noStateFile?: boolean;
}

/** A local stack, its state file, and a way to run the CLI against it in-process. */
export interface CliStack {
  readonly stack: LocalStack;
  readonly stateFile: string;
  readonly fleet: string;
  /** The seeded devices of `fleet`. */
  readonly devices: string[];
  run(argv: readonly string[], options?: RunOptions): Promise<CliResult>;
  stop(): Promise<void>;
}

/** Starts a local stack on the shared moto with one fleet of `size` devices, for CLI tests. */
export async function startCliStack(
  size: number,
  overrides: Partial<LocalStackOptions> = {},
): Promise<CliStack> {
  const fleet = `ops/fleet-${newUuid().slice(0, 8)}`;
  const devices: SimDeviceSeed[] = Array.from({ length: size }, (_, i) => ({
    uuid: newUuid(),
    deviceName: `dev-${String(i).padStart(3, '0')}`,
    isOnline: i % 5 !== 4,
  }));
  const stack = await startLocalStack({
    awsEndpoint: motoEndpoint(),
    seed: { fleets: [{ slug: fleet, services: ['main'], devices }] },
    maxReceiveCount: 3,
    // Production ratios (invocation timeout < lease < visibility timeout) with room for a loaded
    // machine, so a slow but healthy attempt is never received twice. Failures set their own
    // retry delay, so the DLQ scenario does not wait for the visibility timeout.
    invocationTimeoutMs: 20_000,
    leaseSeconds: 25,
    visibilityTimeoutSeconds: 30,
    backoffBaseSeconds: 0,
    backoffMaxSeconds: 1,
    pollerConcurrency: 4,
    legacyEnabled: false,
    ...overrides,
  });
  const dir = mkdtempSync(path.join(tmpdir(), 'provisioner-cli-'));
  const stateFile = path.join(dir, 'stack.json');
  writeFileSync(stateFile, JSON.stringify(stackFile(stack, undefined)));
  return {
    stack,
    stateFile,
    fleet,
    devices: devices.map((d) => d.uuid),
    run: (argv, options = {}) =>
      runCapture(options.noStateFile ? argv : [...argv, '--state-file', stateFile], options),
    stop: async () => {
      await stack.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Runs the CLI in-process as the bin would, capturing stdout and stderr. */
export async function runCapture(
  argv: readonly string[],
  options: RunOptions = {},
): Promise<CliResult> {
  const stdout = new Capture();
  const stderr = new Capture();
  const started = Date.now();
  const code = await runCli(argv, {
    stdout,
    stderr,
    stdin: options.stdin === undefined ? undefined : Readable.from([options.stdin]),
    isTTY: false,
    env: options.env ?? {},
  });
  return { code, stdout: stdout.text, stderr: stderr.text, ms: Date.now() - started };
}

export function parseJson<T = Record<string, unknown>>(result: CliResult): T {
  try {
    return JSON.parse(result.stdout) as T;
  } catch {
    throw new Error(
      `stdout is not one JSON document:\n${result.stdout}\nstderr:\n${result.stderr}`,
    );
  }
}

export { fromBase64, type ThingCertificate, thingCertificates };

export async function certificateExists(stack: LocalStack, certificateId: string) {
  try {
    await stack.aws.iot.send(new DescribeCertificateCommand({ certificateId }));
    return true;
  } catch (error: unknown) {
    if (error instanceof ResourceNotFoundException) return false;
    throw error;
  }
}

/**
 * Asserts the end state of a provisioned device through the real clients: one ACTIVE
 * certificate on its thing, and that certificate in its AWS_CERT variable.
 */
export async function expectProvisioned(cli: CliStack, uuid: string): Promise<ThingCertificate> {
  const certificates = await thingCertificates(cli.stack, uuid);
  expect(certificates).toHaveLength(1);
  const [certificate] = certificates as ThingCertificate[];
  expect(certificate?.status).toBe('ACTIVE');
  const variables = cli.stack.sim?.deviceEnvVars(uuid) ?? {};
  expect(fromBase64(variables.AWS_CERT)).toBe(certificate?.pem);
  expect(variables.AWS_PRIVATE_KEY).toBeTruthy();
  return certificate as ThingCertificate;
}

/** Messages SQS counts in a queue (visible plus in flight). */
export async function queueDepth(stack: LocalStack, queueUrl: string): Promise<number> {
  const out = await stack.aws.sqs.send(
    new GetQueueAttributesCommand({
      QueueUrl: queueUrl,
      AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'],
    }),
  );
  return (
    Number(out.Attributes?.ApproximateNumberOfMessages ?? 0) +
    Number(out.Attributes?.ApproximateNumberOfMessagesNotVisible ?? 0)
  );
}

/** Polls `check` until it returns true or `timeoutMs` passes. */
export async function eventually(
  check: () => Promise<boolean>,
  timeoutMs = 20_000,
  intervalMs = 250,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
