import { describeSystemError, errorMessage, RefusedError, StorageError } from '../core/errors.js'
import { onInterrupt } from '../core/interrupt.js'
import type { Reporter } from '../core/reporter.js'
import { type LockInfo, RepositoryLock } from '../repository/locks.js'
import type { StorageBackend } from '../storage/storage.js'

/**
 * How long a backup waits for a prune (or a prune for running backups) before giving up: a
 * scheduled backup that meets a prune should wait for it, not fail the night's run.
 */
export const LOCK_WAIT_MS = 30 * 60 * 1000

/** Tells the user who holds the repository, and which stale locks were passed over. */
export function lockReports(reporter: Reporter): {
  onWait: (blocker: LockInfo) => void
  onStale: (stale: LockInfo) => void
} {
  let waiting = false
  return {
    onWait: (blocker) => {
      if (waiting) return
      waiting = true
      reporter.info(
        `waiting for ${blocker.command} on ${blocker.host} (pid ${blocker.pid}), which holds the repository since ${blocker.created}`,
      )
    },
    onStale: (stale) =>
      reporter.warn(
        `ignoring a stale lock of ${stale.command} on ${stale.host} (pid ${stale.pid}), last refreshed ${stale.refreshed}: that process stopped without releasing it`,
      ),
  }
}

/**
 * Runs `work` under a shared lock, so that a prune (exclusive) cannot remove what a restore or
 * a check is reading, and first waits for a prune that is running. Reading must not need write
 * access: where the lock cannot be written (read-only credentials, a read-only copy of the
 * repository) it says so and reads without one.
 */
export async function whileReading<T>(
  storage: StorageBackend,
  command: string,
  reporter: Reporter,
  work: () => Promise<T>,
): Promise<T> {
  let lock: RepositoryLock | undefined
  try {
    lock = await RepositoryLock.acquire(storage, {
      kind: 'shared',
      command,
      wait: LOCK_WAIT_MS,
      ...lockReports(reporter),
      onLost: (error) =>
        reporter.warn(
          `${command} lost its repository lock (${error.message}): a prune may now remove data it has yet to read`,
        ),
    })
  } catch (error) {
    // A prune that held the repository for the whole wait is a failure, not a warning.
    if (error instanceof RefusedError) throw error
    const system = describeSystemError(error)
    if (!(error instanceof StorageError) && !system) throw error
    reporter.warn(
      `${command} runs without a repository lock, which it could not write (${system?.message ?? errorMessage(error)}): a prune started meanwhile could remove data it reads`,
    )
  }
  const held = lock
  const forget = held ? onInterrupt(() => held.release()) : () => false
  try {
    return await work()
  } finally {
    forget()
    await held?.release().catch((error: unknown) => {
      reporter.warn(
        `could not remove the ${command} lock (${errorMessage(error)}): it expires by itself, or \`kluis unlock\` removes it`,
      )
    })
  }
}
