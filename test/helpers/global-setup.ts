import { type MotoServer, startMoto } from '../../src/local/moto';

declare global {
  var __MOTO__: MotoServer | undefined;
}

/** One moto server for the whole run; tests isolate themselves by unique names. */
export default async function globalSetup(): Promise<void> {
  const moto = await startMoto();
  // Global setup and teardown share this process; workers inherit the variable.
  globalThis.__MOTO__ = moto;
  process.env.MOTO_ENDPOINT = moto.endpoint;
}
