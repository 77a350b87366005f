import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import path from 'node:path';
import { findFreePort, waitForHttp } from './ports';

export const MOTO_INSTALL_HINT = "python3 -m pip install 'moto[server]'";

/** A running moto server. */
export interface MotoServer {
  readonly endpoint: string;
  readonly pid: number;
  /** Clears all emulated AWS state. */
  reset(): Promise<void>;
  stop(): Promise<void>;
}

export interface StartMotoOptions {
  readonly port?: number;
  readonly python?: string;
  /** Where moto's own output goes; default: discarded. */
  readonly logFile?: number | 'inherit';
}

const LAUNCHER = path.join(__dirname, 'moto_launcher.py');

/** Throws a clear error when moto is not importable by `python`. */
export function assertMotoInstalled(python = 'python3'): void {
  const probe = spawnSync(python, ['-c', 'import moto.server, cryptography'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) {
    throw new Error(
      `moto is not installed for ${python} (needed as the local AWS emulator). Install it with: ${MOTO_INSTALL_HINT}`,
    );
  }
}

/**
 * Starts moto (through the launcher that makes CreateCertificateFromCsr honour
 * the CSR's key) on 127.0.0.1 and waits until it answers.
 */
export async function startMoto(options: StartMotoOptions = {}): Promise<MotoServer> {
  const python = options.python ?? process.env.MOTO_PYTHON ?? 'python3';
  assertMotoInstalled(python);
  const port = options.port ?? (await findFreePort());
  const child: ChildProcess = spawn(python, [LAUNCHER, '-H', '127.0.0.1', '-p', String(port)], {
    stdio: ['ignore', options.logFile ?? 'ignore', options.logFile ?? 'ignore'],
    detached: false,
  });
  const endpoint = `http://127.0.0.1:${port}`;
  const exited = new Promise<never>((_, reject) => {
    child.once('exit', (code) => reject(new Error(`moto_server exited early with code ${code}`)));
  });
  exited.catch(() => undefined);
  await Promise.race([waitForHttp(`${endpoint}/moto-api/`), exited]);
  const pid = child.pid ?? 0;
  return {
    endpoint,
    pid,
    async reset() {
      await fetch(`${endpoint}/moto-api/reset`, { method: 'POST' });
    },
    async stop() {
      await stopPid(pid);
    },
  };
}

/** Stops a process by PID: SIGTERM, then SIGKILL if it lingers. */
export async function stopPid(pid: number, graceMs = 3_000): Promise<void> {
  if (!pid || !isAlive(pid)) return;
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline && isAlive(pid)) await new Promise((r) => setTimeout(r, 50));
  if (isAlive(pid)) process.kill(pid, 'SIGKILL');
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
