import { Presets, SingleBar } from 'cli-progress';
import type { CliIo } from './io';

/** Progress of a counted task on stderr: a bar on a terminal, a line every ~10% otherwise. */
export interface Progress {
  increment(by?: number): void;
  stop(): void;
}

export function startProgress(io: CliIo, label: string, total: number): Progress {
  if (total === 0) return { increment: () => undefined, stop: () => undefined };
  if (io.isTTY) {
    const bar = new SingleBar(
      {
        stream: io.stderr,
        format: `${label} [{bar}] {value}/{total} {percentage}% | {duration_formatted} elapsed, ETA {eta_formatted}`,
        hideCursor: true,
        clearOnComplete: false,
      },
      Presets.shades_classic,
    );
    bar.start(total, 0);
    return { increment: (by = 1) => bar.increment(by), stop: () => bar.stop() };
  }
  let done = 0;
  let reported = 0;
  const started = Date.now();
  return {
    increment: (by = 1) => {
      done += by;
      const tenth = Math.floor((done * 10) / total);
      if (tenth > reported || done === total) {
        reported = tenth;
        const seconds = ((Date.now() - started) / 1000).toFixed(1);
        io.stderr.write(
          `${label}: ${done}/${total} (${Math.floor((done * 100) / total)}%) ${seconds}s\n`,
        );
      }
    },
    stop: () => undefined,
  };
}
