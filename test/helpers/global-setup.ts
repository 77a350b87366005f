import { type MotoServer, startMoto } from '../../src/local/moto';

declare global {
  var __MOTOS__: MotoServer[] | undefined;
}

/**
 * One moto per jest worker (moto is single-threaded Python, the busiest process of a run):
 * tests on a worker share its moto and isolate themselves by unique names.
 */
export default async function globalSetup(globalConfig: { maxWorkers: number }): Promise<void> {
  const count = Math.max(1, globalConfig.maxWorkers);
  const motos = await Promise.all(Array.from({ length: count }, () => startMoto()));
  // Global setup and teardown share this process; workers inherit the variable.
  globalThis.__MOTOS__ = motos;
  process.env.MOTO_ENDPOINTS = motos.map((m) => m.endpoint).join(',');
}
