/**
 * Measures `enroll` on the local stack:
 * `npx tsx src/cli/measure-enroll.ts [devices=200] [concurrency=4] [--enqueue-only]`.
 * Starts moto (or uses MOTO_ENDPOINT), seeds one fleet, runs `enroll --wait` in-process and
 * prints the enqueue rate and the end-to-end (provisioned) rate in devices/s. With
 * `--enqueue-only` the worker is not started and only the enqueue is measured.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startLocalStack } from '../local/stack';
import { stackFile } from '../local/stack-file';
import { runCli } from './main';

async function main(): Promise<void> {
  const args = process.argv.slice(2).filter((a) => !a.startsWith('--'));
  const enqueueOnly = process.argv.includes('--enqueue-only');
  const count = Number(args[0] ?? 200);
  const concurrency = args[1] ?? '4';
  const fleet = 'bench/enroll';
  const stack = await startLocalStack({
    awsEndpoint: process.env.MOTO_ENDPOINT,
    startWorker: !enqueueOnly,
    seed: {
      fleets: [
        {
          slug: fleet,
          devices: Array.from({ length: count }, () => ({ uuid: randomBytes(16).toString('hex') })),
        },
      ],
    },
  });
  const dir = mkdtempSync(path.join(tmpdir(), 'measure-enroll-'));
  const stateFile = path.join(dir, 'stack.json');
  writeFileSync(stateFile, JSON.stringify(stackFile(stack, undefined)));
  let enqueueLine = '';
  const stderr = {
    write(chunk: string) {
      if (chunk.startsWith('enqueue took')) enqueueLine = chunk.trim();
      return process.stderr.write(chunk);
    },
  } as NodeJS.WritableStream;
  try {
    const started = Date.now();
    const code = await runCli(
      [
        'enroll',
        '--fleet',
        fleet,
        ...(enqueueOnly ? [] : ['--wait']),
        '--concurrency',
        concurrency,
        '--state-file',
        stateFile,
      ],
      { stdout: process.stdout, stderr, isTTY: false, env: {} },
    );
    const seconds = (Date.now() - started) / 1000;
    process.stdout.write(
      `\n${count} devices, concurrency ${concurrency}: exit ${code}; ${enqueueLine}; ${enqueueOnly ? 'enroll' : 'enroll --wait'} end to end ${seconds.toFixed(1)}s = ${(count / seconds).toFixed(1)} devices/s\n`,
    );
  } finally {
    await stack.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
