import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { startMoto } from '../../src/local/moto';

/** One moto server for the whole run; tests isolate themselves by unique names. */
export default async function globalSetup(): Promise<void> {
  const moto = await startMoto();
  process.env.MOTO_ENDPOINT = moto.endpoint;
  writeFileSync(path.join(__dirname, '.moto-pid'), String(moto.pid));
}
