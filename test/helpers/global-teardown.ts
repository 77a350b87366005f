import { readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { stopPid } from '../../src/local/moto';

export default async function globalTeardown(): Promise<void> {
  const file = path.join(__dirname, '.moto-pid');
  const pid = Number(readFileSync(file, 'utf8'));
  rmSync(file, { force: true });
  await stopPid(pid);
}
