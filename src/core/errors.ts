/**
 * Typed errors. Each carries what went wrong (message) and what the user can do (hint).
 * Only entry points (CLI, action) decide how an error is shown and which exit code it gets.
 */
export abstract class KluisError extends Error {
  /** What the user can do about it, shown after the message. */
  readonly hint: string | undefined
  /** Exit code for the CLI: 2 for bad usage or configuration, 1 for a failed operation. */
  abstract readonly exitCode: 1 | 2

  constructor(message: string, hint?: string) {
    super(message)
    this.name = new.target.name
    this.hint = hint
  }
}

/** The command line or the configuration is wrong. */
export class ConfigError extends KluisError {
  readonly exitCode = 2
}

/** A key is missing, unreadable, protected by a wrong passphrase, or not the right one. */
export class KeyError extends KluisError {
  readonly exitCode = 1
}

/** The repository storage failed or holds something unexpected. */
export class StorageError extends KluisError {
  readonly exitCode = 1
}

/** Data read back does not match what was written: tampering or corruption. Names the object. */
export class IntegrityError extends KluisError {
  readonly exitCode = 1
  constructor(
    readonly object: string,
    /** What is wrong with the object, without its name. */
    readonly detail: string,
    hint?: string,
  ) {
    super(`${object}: ${detail}`, hint)
  }
}

/** A source could not be read or restored. */
export class SourceError extends KluisError {
  readonly exitCode = 1
}

/** The operation is refused to protect data (e.g. a non-empty restore target). */
export class RefusedError extends KluisError {
  readonly exitCode = 1
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}

const systemErrors: Record<string, [string, string]> = {
  EACCES: ['permission denied', 'check that this user may read (or write) it'],
  EPERM: ['operation not permitted', 'check that this user may read (or write) it'],
  ENOSPC: ['no space left on the device', 'free space, or set KLUIS_TMPDIR to a larger disk'],
  EDQUOT: ['disk quota exceeded', 'free space, or set KLUIS_TMPDIR to a larger disk'],
  EROFS: ['the file system is read-only', 'choose a writable location'],
  ENOENT: ['no such file or directory', 'check the path'],
  ENOTDIR: ['a part of the path is not a directory', 'check the path'],
  EMFILE: ['too many open files', 'raise the limit (ulimit -n)'],
  EIO: ['input/output error', 'check the disk'],
}

/**
 * An operating-system error (permission, full disk, …) is the user's environment, not a bug:
 * describe it in one line with the path, and the likely fix.
 */
export function describeSystemError(error: unknown): { message: string; hint: string } | undefined {
  const { code, path, syscall } = (error ?? {}) as NodeJS.ErrnoException
  const known = code ? systemErrors[code] : undefined
  if (!known) return undefined
  const what = path
    ? `cannot ${syscall ?? 'access'} ${path}`
    : `${syscall ?? 'a system call'} failed`
  return { message: `${what}: ${known[0]} (${code})`, hint: known[1] }
}
