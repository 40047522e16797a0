import type { Reporter } from '../core/reporter.js'
import type { LockInfo } from '../repository/locks.js'

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
