import { ConfigError, IntegrityError } from '../core/errors.js'
import type { PublicKey } from '../crypto/keys.js'
import type { SnapshotIndex } from '../repository/format.js'
import type { Repository } from '../repository/repository.js'

export interface SnapshotChoice {
  /** A snapshot id or a unique prefix of one. */
  snapshot?: string
  /** The latest snapshot at or before this time. */
  at?: Date
  /** Only snapshots that contain all these sources. */
  sources?: string[]
}

/**
 * Picks the snapshot to read: by id, by point in time, or the latest. Only indexes with a
 * valid writer signature can be chosen. When choosing by time, an index that fails
 * verification stops the choice (it might have been the right one): tampering is loud.
 */
export async function selectSnapshot(
  repository: Repository,
  writer: PublicKey,
  choice: SnapshotChoice,
): Promise<SnapshotIndex> {
  const ids = await repository.listSnapshotIds()
  if (choice.snapshot) {
    const matches = ids.filter((id) => id.startsWith(choice.snapshot as string))
    if (matches.length === 0) {
      throw new ConfigError(
        `no snapshot ${choice.snapshot} in the repository`,
        'list them with `kluis snapshots`',
      )
    }
    if (matches.length > 1) {
      throw new ConfigError(
        `snapshot prefix ${choice.snapshot} is ambiguous`,
        'give more characters of the id',
      )
    }
    return repository.readIndex(matches[0] as string, writer)
  }
  const snapshots: SnapshotIndex[] = []
  for (const id of ids) {
    try {
      snapshots.push(await repository.readIndex(id, writer))
    } catch (error) {
      if (error instanceof IntegrityError) {
        throw new IntegrityError(
          error.object,
          error.detail,
          'pass --snapshot ID to read a snapshot whose index verifies; run `kluis check` to see every problem',
        )
      }
      throw error
    }
  }
  const wanted = choice.sources ?? []
  const candidates = snapshots
    .filter((s) => wanted.every((name) => s.sources.some((source) => source.name === name)))
    .filter((s) => !choice.at || Date.parse(s.time) <= (choice.at as Date).getTime())
    .sort((a, b) => a.time.localeCompare(b.time) || a.id.localeCompare(b.id))
  const chosen = candidates.at(-1)
  if (!chosen) {
    const what = wanted.length > 0 ? ` with source ${wanted.join(', ')}` : ''
    const when = choice.at ? ` at or before ${choice.at.toISOString()}` : ''
    throw new ConfigError(
      `no snapshot${what}${when} in the repository`,
      'list them with `kluis snapshots`',
    )
  }
  return chosen
}
