import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { BalenaSimSeed } from './balena-sim';
import { startLocalStack } from './stack';
import { stackFile } from './stack-file';

const DEMO_FLEET = 'demo/fleet';

/** The demo fleet seeded when no seed file is given: `LOCAL_DEVICES` devices (default 3). */
function demoSeed(count: number): BalenaSimSeed {
  return {
    fleets: [
      {
        slug: DEMO_FLEET,
        services: ['main'],
        devices: Array.from({ length: count }, (_, i) => ({
          uuid: `${'d'.repeat(30)}${String(i).padStart(2, '0')}`,
          deviceName: `demo-${i}`,
          isOnline: true,
          deviceKey: `demo-device-key-${i}`,
        })),
      },
    ],
  };
}

/**
 * `npm start`: runs the whole pipeline on this machine until SIGINT/SIGTERM. With
 * BALENA_API_URL + BALENA_API_KEY it talks to a real balena API instead of the simulator; with
 * LOCAL_AWS=real it uses real AWS (default credential chain, AWS_REGION) instead of moto.
 */
async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      port: { type: 'string', default: process.env.PORT ?? '3000' },
      seed: { type: 'string' },
      'state-file': { type: 'string', default: '.local/stack.json' },
    },
  });
  const realBalena = process.env.BALENA_API_URL && process.env.BALENA_API_KEY;
  const seed = realBalena
    ? undefined
    : values.seed
      ? (JSON.parse(readFileSync(values.seed, 'utf8')) as BalenaSimSeed)
      : demoSeed(Number(process.env.LOCAL_DEVICES ?? 3));
  const stack = await startLocalStack({
    apiPort: Number(values.port),
    seed,
    namespace: 'local',
    visibilityTimeoutSeconds: 30,
    realAws: process.env.LOCAL_AWS === 'real',
    region: process.env.AWS_REGION,
    ...(realBalena
      ? {
          balena: {
            url: process.env.BALENA_API_URL as string,
            apiKey: process.env.BALENA_API_KEY as string,
          },
        }
      : {}),
  });
  const stateFile = path.resolve(values['state-file'] as string);
  mkdirSync(path.dirname(stateFile), { recursive: true });
  const state = stackFile(stack, seed);
  writeFileSync(stateFile, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
  const device = state.balena.devices?.[0];
  process.stdout.write(
    [
      `ready: API on ${stack.apiUrl} (Ctrl-C stops everything)`,
      `  AWS      ${stack.awsEndpoint}`,
      `  balena   ${stack.balenaApiUrl}${realBalena ? '' : ' (simulator)'}`,
      `  state    ${stateFile} (the CLI reads it: npx provisioner --help)`,
      ...(device
        ? [
            '',
            'try it:',
            `  curl -si -X POST ${stack.apiUrl}/v1/provision -H 'Authorization: Bearer ${device.apiKey}' -H 'Content-Type: application/json' -d '{"uuid":"${device.uuid}"}'`,
            `  curl -s '${stack.apiUrl}/v1/devices/${device.uuid}' -H 'Authorization: Bearer ${device.apiKey}'`,
            `  curl -si -X POST ${stack.apiUrl}/provision -H 'Content-Type: application/json' -d '{"uuid":"${state.balena.devices?.[1]?.uuid ?? device.uuid}","balena_service":"main"}'`,
          ]
        : []),
      '',
    ].join('\n'),
  );
  let stopping = false;
  const shutdown = async () => {
    if (stopping) return;
    stopping = true;
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
