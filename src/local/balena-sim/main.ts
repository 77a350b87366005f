/**
 * Runs the balena simulator as its own process:
 *   npx tsx src/local/balena-sim/main.ts --port 0 --seed seed.json [--host 127.0.0.1]
 * Prints one JSON line `{"url": "..."}` once listening; stops on SIGTERM/SIGINT.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { seedSchema, startBalenaSimulator } from './index';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      port: { type: 'string', default: '0' },
      seed: { type: 'string' },
      host: { type: 'string', default: '127.0.0.1' },
    },
  });
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new Error(`bad --port ${values.port}`);
  const seed = values.seed
    ? seedSchema.parse(JSON.parse(readFileSync(values.seed, 'utf8')))
    : undefined;
  const sim = await startBalenaSimulator({ port, seed, host: values.host });
  process.stdout.write(`${JSON.stringify({ url: sim.url })}\n`);
  let stopping = false;
  const shutdown = (): void => {
    // A process-group signal also arrives relayed by tsx: handle it once, ignore repeats.
    if (stopping) return;
    stopping = true;
    sim.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
}

main().catch((error: unknown) => {
  process.stderr.write(
    `balena simulator: ${error instanceof Error ? error.message : String(error)}\n`,
  );
  process.exit(1);
});
