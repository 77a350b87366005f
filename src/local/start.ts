import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { BalenaSimSeed } from './balena-sim';
import { startLocalStack } from './stack';

/** The demo fleet seeded when no seed file is given. */
function demoSeed(): BalenaSimSeed {
  return {
    fleets: [
      {
        slug: 'demo/fleet',
        services: ['main', 'cloud-relay'],
        devices: Array.from({ length: 5 }, (_, i) => ({
          uuid: `${'d'.repeat(31)}${i}`,
          deviceName: `demo-${i}`,
          isOnline: true,
          deviceKey: `demo-device-key-${i}`,
        })),
      },
    ],
  };
}

/** `npm start`: run the whole pipeline locally until Ctrl-C, and tell the operator how to use it. */
async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      port: { type: 'string', default: '8080' },
      seed: { type: 'string' },
      'state-file': { type: 'string', default: '.local/stack.json' },
    },
  });
  const seed = values.seed
    ? (JSON.parse(readFileSync(values.seed, 'utf8')) as BalenaSimSeed)
    : demoSeed();
  const stack = await startLocalStack({
    apiPort: Number(values.port),
    seed,
    namespace: 'local',
    visibilityTimeoutSeconds: 30,
  });
  const stateFile = path.resolve(values['state-file'] as string);
  mkdirSync(path.dirname(stateFile), { recursive: true });
  writeFileSync(stateFile, `${JSON.stringify(stack.descriptor(), null, 2)}\n`, { mode: 0o600 });
  const device = seed.fleets?.[0]?.devices?.[0];
  process.stdout.write(
    [
      'local stack running (Ctrl-C stops it)',
      `  API            ${stack.apiUrl}`,
      `  moto (AWS)     ${stack.awsEndpoint}`,
      `  balena (sim)   ${stack.balenaApiUrl}`,
      `  state          ${stateFile} (read by: npx provisioner ...)`,
      '',
      'try it:',
      device
        ? `  curl -s -X POST ${stack.apiUrl}/provision -H 'Content-Type: application/json' -d '{"uuid":"${device.uuid}"}'`
        : '',
      device
        ? `  curl -s ${stack.apiUrl}/v1/devices/${device.uuid} -H 'Authorization: Bearer ${device.deviceKey}'`
        : '',
      '',
    ].join('\n'),
  );
  const shutdown = async () => {
    await stack.stop();
    process.exit(0);
  };
  process.once('SIGINT', shutdown);
  process.once('SIGTERM', shutdown);
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
