import { type KluisConfig, retentionFor } from '../config/config.js'
import { loadWriterPublicKey } from '../config/key-material.js'
import { ConfigError, errorMessage, IntegrityError } from '../core/errors.js'
import { formatBytes } from '../core/format.js'
import type { Reporter } from '../core/reporter.js'
import { objectNames, type SnapshotIndex } from '../repository/format.js'
import { RepositoryLock } from '../repository/locks.js'
import { renewObjectLocks } from '../retention/object-lock-renewal.js'
import { applyRetention, isEmptyPolicy, type RetentionPolicy } from '../retention/policy.js'
import { openRepository } from './common.js'
import { LOCK_WAIT_MS, lockReports } from './locking.js'

/** A temporary file in the repository this old belongs to a write that will never finish. */
const ABANDONED_AFTER_MS = 60 * 60 * 1000

export interface PruneOptions {
  /** Only decide and report; change nothing. */
  dryRun: boolean
  /**
   * Renew every object lock now rather than when half the period is over: after object lock
   * was configured for a repository that already held objects written without one.
   */
  renewLocks?: boolean
  /** The clock for retention (tests); default now. */
  now?: Date
}

export interface PruneDecision {
  id: string
  time: string
  host: string
  sources: string[]
  keep: boolean
  /** Why it is kept, per source ("app: daily snapshot 3 of 30"); empty when removed. */
  reasons: string[]
}

export interface PruneResult {
  dryRun: boolean
  decisions: PruneDecision[]
  removedSnapshots: number
  removedChunks: number
  /** Stored bytes of the removed chunks. */
  freedBytes: number
  /** Indexes that failed verification: they count for nothing and are left alone. */
  ignored: string[]
}

/**
 * Applies the retention policy and removes what it does not keep: first each removed snapshot
 * (its index, so it is gone at once, then its manifests), then every chunk no kept snapshot
 * references. Holds the exclusive lock throughout, so no backup runs meanwhile: a chunk a
 * running backup has uploaded or chosen to reuse is never deleted. Only snapshots whose index
 * the trusted writer signed take part; a planted index can push nothing out of retention.
 */
export async function prune(
  config: KluisConfig,
  options: PruneOptions,
  reporter: Reporter,
  env: NodeJS.ProcessEnv,
): Promise<PruneResult> {
  const policies = new Map<string, RetentionPolicy>()
  for (const source of config.sources) policies.set(source.name, retentionFor(config, source))
  const fallback = retentionFor(config, undefined)
  if ([...policies.values(), fallback].every(isEmptyPolicy)) {
    throw new ConfigError(
      'no retention policy is configured: prune would keep nothing',
      'set retention: { keep-daily: 30, keep-monthly: 12 } in the configuration',
    )
  }
  const writer = await loadWriterPublicKey(config)
  const repository = await openRepository(config, env)
  const lock = options.dryRun
    ? undefined
    : await RepositoryLock.acquire(repository.storage, {
        kind: 'exclusive',
        command: 'prune',
        wait: LOCK_WAIT_MS,
        ...lockReports(reporter),
      })
  try {
    const indexes: SnapshotIndex[] = []
    const ignored: string[] = []
    const unverified: string[] = []
    for (const id of await repository.listSnapshotIds()) {
      try {
        indexes.push(await repository.readIndex(id, writer))
      } catch (error) {
        if (!(error instanceof IntegrityError)) throw error
        ignored.push(error.message)
        unverified.push(id)
        reporter.warn(`ignored: ${error.message}`)
      }
    }
    const decisions = decide(indexes, policies, fallback, options.now ?? new Date())
    const removed = decisions.filter((d) => !d.keep)
    const result: PruneResult = {
      dryRun: options.dryRun,
      decisions,
      removedSnapshots: removed.length,
      removedChunks: 0,
      freedBytes: 0,
      ignored,
    }
    if (options.dryRun || !lock) return result

    for (const decision of removed) {
      lock.assertHeld()
      const index = indexes.find((i) => i.id === decision.id) as SnapshotIndex
      // The index first: without it the snapshot no longer exists for anyone.
      await repository.storage.delete(objectNames.index(index.id))
      for (const group of Object.keys(index.manifests)) {
        await repository.storage.delete(objectNames.manifest(index.id, group))
      }
    }
    // An index that fails verification decides nothing, but a damaged genuine one may still
    // be repaired: the chunks it names are kept (a planted one only pins some storage).
    const referenced = new Set<string>()
    for (const id of unverified) {
      for (const chunk of await repository.unverifiedChunkIds(id)) referenced.add(chunk)
    }
    for (const index of indexes) {
      if (removed.some((d) => d.id === index.id)) continue
      for (const source of index.sources) {
        for (const stream of source.streams) for (const [id] of stream.chunks) referenced.add(id)
      }
    }
    for (const [id, size] of await repository.listChunks()) {
      if (referenced.has(id)) continue
      lock.assertHeld()
      await repository.storage.delete(objectNames.chunk(id))
      result.removedChunks++
      result.freedBytes += size
    }
    // Leftovers of writes killed mid-way. Backups hold shared locks and are excluded now, so an
    // hour's age only spares a lock-free `kluis init` that happens to be writing.
    const swept = await repository.storage.sweepAbandonedWrites?.(
      new Date(Date.now() - ABANDONED_AFTER_MS),
    )
    if (swept?.files) {
      reporter.info(
        `removed ${swept.files} temporary file(s) that interrupted writes left (${formatBytes(swept.bytes)})`,
      )
      result.freedBytes += swept.bytes
    }
    lock.assertHeld()
    await renewObjectLocks(repository, options.now ?? new Date(), reporter, {
      force: options.renewLocks ?? false,
    })
    return result
  } catch (error) {
    if (error instanceof Error && !(error instanceof ConfigError) && lock) {
      reporter.warn(`prune stopped: ${errorMessage(error)}; what it removed so far is consistent`)
    }
    throw error
  } finally {
    await lock?.release()
  }
}

/**
 * A snapshot is kept when the policy of any of its sources keeps it, judged among the
 * snapshots that hold that source.
 */
function decide(
  indexes: SnapshotIndex[],
  policies: Map<string, RetentionPolicy>,
  fallback: RetentionPolicy,
  now: Date,
): PruneDecision[] {
  const reasons = new Map<string, string[]>(indexes.map((index) => [index.id, []]))
  const sourceNames = new Set(indexes.flatMap((index) => index.sources.map((s) => s.name)))
  for (const name of sourceNames) {
    const holding = indexes.filter((index) => index.sources.some((s) => s.name === name))
    const policy = policies.get(name) ?? fallback
    for (const decision of applyRetention(holding, policy, now)) {
      for (const reason of decision.reasons) reasons.get(decision.id)?.push(`${name}: ${reason}`)
    }
  }
  return indexes
    .map((index) => {
      const why = reasons.get(index.id) ?? []
      return {
        id: index.id,
        time: index.time,
        host: index.host,
        sources: index.sources.map((s) => s.name),
        keep: why.length > 0,
        reasons: why,
      }
    })
    .sort((a, b) => b.time.localeCompare(a.time) || b.id.localeCompare(a.id))
}
