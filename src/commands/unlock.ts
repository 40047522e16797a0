import type { KluisConfig } from '../config/config.js'
import type { Reporter } from '../core/reporter.js'
import { type LockInfo, listLocks, removeLocks } from '../repository/locks.js'
import { openConfiguredStorage } from './common.js'

/**
 * Removes locks: only stale ones (their holder stopped refreshing them), or all of them, for an
 * operator who knows that no kluis runs on the repository. Removing a live lock would let a
 * prune delete what a running backup needs: a fresh one removed is said aloud.
 */
export async function unlock(
  config: KluisConfig,
  options: { staleOnly: boolean },
  reporter: Reporter,
  env: NodeJS.ProcessEnv,
): Promise<LockInfo[]> {
  const storage = await openConfiguredStorage(config, env)
  const before = await listLocks(storage)
  const removed = await removeLocks(storage, { staleOnly: options.staleOnly })
  for (const lock of removed) {
    if (before.some((listed) => listed.id === lock.id && !listed.stale)) {
      reporter.warn(
        `removed a lock that was still being refreshed: ${lock.command} on ${lock.host} (pid ${lock.pid}); make sure that process is not running`,
      )
    }
  }
  return removed
}
