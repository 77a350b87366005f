/** A usage or configuration problem: the CLI exits 2 with this one-line message. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** The command ran but could not do what was asked: the CLI exits 1 with this message. */
export class CommandFailedError extends Error {
  override readonly name = 'CommandFailedError';
}

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;
