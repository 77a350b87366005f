/**
 * `npm run bench [-- --devices N] [--scenario name ...] [--smoke]`: measures the pipeline on the
 * local stack (moto + the balena simulator, all in this process but moto) and writes
 * bench/results/latest.json plus a dated copy. Figures are medians/percentiles of one run on
 * this machine; compare ratios, not absolute numbers, across machines.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { type MotoServer, startMoto } from '../src/local/moto';
import { runColdStart } from './scenarios/cold-start';
import { estimateCost } from './scenarios/cost';
import { runBulk, runBurst, runLongPoll, runThrottled } from './scenarios/pipeline';
import type { BenchContext } from './scenarios/support';

const SCENARIOS = ['bulk', 'burst', 'longpoll', 'throttled', 'coldStart', 'cost'] as const;
type Scenario = (typeof SCENARIOS)[number];

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      devices: { type: 'string' },
      scenario: { type: 'string', multiple: true },
      smoke: { type: 'boolean', default: false },
      // moto on 2 cores sustains ~5 devices/s, below IoT's 15/s: scale the enforced quotas
      // (and the worker's pacing) so the limit, not the emulator, is what binds.
      'rate-scale': { type: 'string', default: '0.2' },
      out: { type: 'string', default: path.join(__dirname, 'results') },
    },
  });
  const chosen = (values.scenario?.length ? values.scenario : SCENARIOS) as Scenario[];
  for (const name of chosen) {
    if (!SCENARIOS.includes(name)) {
      throw new Error(`unknown scenario '${name}'; choose from ${SCENARIOS.join(', ')}`);
    }
  }
  const devices = values.devices ? Number(values.devices) : undefined;
  const smoke = values.smoke ?? false;
  const sizes = {
    bulk: devices ?? (smoke ? 10 : 300),
    burst: devices ?? (smoke ? 10 : 300),
    longpoll: smoke ? 5 : 100,
    throttled: devices ?? (smoke ? 10 : 200),
  };

  const moto: MotoServer = await startMoto();
  const ctx: BenchContext = {
    motoEndpoint: moto.endpoint,
    log: (line) => process.stderr.write(`${line}\n`),
  };
  const scenarios: Record<string, unknown> = {};
  try {
    let bulk: Awaited<ReturnType<typeof runBulk>> | undefined;
    if (chosen.includes('bulk') || chosen.includes('cost')) {
      bulk = await runBulk(ctx, sizes.bulk);
      if (chosen.includes('bulk')) scenarios.bulk = bulk.summary;
    }
    if (chosen.includes('burst')) scenarios.burst = await runBurst(ctx, sizes.burst);
    let longpoll: Awaited<ReturnType<typeof runLongPoll>> | undefined;
    if (chosen.includes('longpoll') || chosen.includes('cost')) {
      longpoll = await runLongPoll(ctx, sizes.longpoll);
      if (chosen.includes('longpoll')) scenarios.longpoll = longpoll;
    }
    if (chosen.includes('throttled')) {
      scenarios.throttled = await runThrottled(ctx, sizes.throttled, Number(values['rate-scale']));
    }
    if (chosen.includes('coldStart')) scenarios.coldStart = await runColdStart(ctx, smoke ? 1 : 5);
    if (chosen.includes('cost') && bulk && longpoll) {
      scenarios.cost = estimateCost(bulk.usage, longpoll.postToSucceededP50Ms);
    }
  } finally {
    await moto.stop();
  }

  const result = {
    machine: `${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}, ${process.platform}`,
    date: new Date().toISOString(),
    command: `npm run bench -- ${process.argv.slice(2).join(' ')}`.trim(),
    scenarios,
  };
  mkdirSync(values.out as string, { recursive: true });
  const json = `${JSON.stringify(result, null, 2)}\n`;
  writeFileSync(path.join(values.out as string, 'latest.json'), json);
  const stamp = result.date.slice(0, 19).replace(/[:T]/g, '-');
  writeFileSync(
    path.join(values.out as string, `${stamp}-${randomBytes(2).toString('hex')}.json`),
    json,
  );
  process.stdout.write(`${renderTable(scenarios)}\n`);
}

function renderTable(scenarios: Record<string, unknown>): string {
  const rows: string[] = [];
  for (const [name, figures] of Object.entries(scenarios)) {
    const flat = Object.entries(figures as Record<string, unknown>)
      .filter(([, v]) => typeof v === 'number' || typeof v === 'string')
      .map(([k, v]) => `${k}=${typeof v === 'number' ? round(v) : v}`)
      .join('  ');
    rows.push(`${name.padEnd(10)} ${flat}`);
    if (name === 'bulk') {
      const calls = (figures as { callsPerDevice?: Record<string, number> }).callsPerDevice ?? {};
      rows.push(
        `${''.padEnd(10)} callsPerDevice: ${Object.entries(calls)
          .map(([k, v]) => `${k}=${round(v)}`)
          .join(' ')}`,
      );
    }
    if (name === 'cost') {
      rows.push(
        `${''.padEnd(10)} ${JSON.stringify((figures as { per1000Devices: unknown }).per1000Devices)}`,
      );
    }
  }
  return rows.join('\n');
}

function round(value: number): number {
  return Math.abs(value) >= 100 ? Math.round(value) : Math.round(value * 100) / 100;
}

main().catch((error: unknown) => {
  process.stderr.write(
    `${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  process.exit(1);
});
