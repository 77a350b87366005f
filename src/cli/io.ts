import { createInterface } from 'node:readline/promises';

/** Where a CLI run reads and writes; the bin passes the process's, tests pass captures. */
export interface CliIo {
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
  /** Answers to confirmation prompts; without it, commands that must confirm need `--yes`. */
  readonly stdin?: NodeJS.ReadableStream;
  /** Draw progress bars (stderr is a terminal) rather than plain progress lines. */
  readonly isTTY: boolean;
  readonly env: Readonly<Record<string, string | undefined>>;
}

export function printLine(io: CliIo, line = ''): void {
  io.stdout.write(`${line}\n`);
}

/** Exactly one JSON document on stdout, for scripts. */
export function printJson(io: CliIo, value: unknown): void {
  io.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

export function note(io: CliIo, line: string): void {
  io.stderr.write(`${line}\n`);
}

/** Asks a yes/no question on stderr and reads one line from stdin; anything but y/yes is no. */
export async function confirm(io: CliIo, question: string): Promise<boolean> {
  if (!io.stdin) return false;
  const rl = createInterface({ input: io.stdin, output: io.stderr, terminal: false });
  try {
    io.stderr.write(`${question} [y/N] `);
    const answer = await new Promise<string>((resolve) => {
      rl.once('line', resolve);
      rl.once('close', () => resolve(''));
    });
    return /^(y|yes)$/i.test(answer.trim());
  } finally {
    rl.close();
  }
}
