import { randomInt } from 'node:crypto'
import type { KluisConfig } from '../config/config.js'
import {
  loadReaderKeys,
  loadReaderPrivateKeys,
  loadWriterPublicKey,
} from '../config/key-material.js'
import { mapOrdered } from '../core/concurrency.js'
import { IntegrityError, KeyError, StorageError } from '../core/errors.js'
import type { Reporter } from '../core/reporter.js'
import { ChunkOpener } from '../crypto/chunk-cipher.js'
import { fingerprintOf, type PublicKey } from '../crypto/keys.js'
import { decodeChunk } from '../repository/chunk-codec.js'
import { objectNames, type SnapshotIndex } from '../repository/format.js'
import type { Repository } from '../repository/repository.js'
import { objectLockRenewalWarning } from '../retention/object-lock-renewal.js'
import { openRepository } from './common.js'
import { whileReading } from './locking.js'
import { rpoFailures, sourceAges, stalestAgeHours } from './objectives.js'

export interface CheckOptions {
  /** Decrypt every referenced chunk and verify its HMAC (needs a reader key). */
  readData: boolean
  /** Read only this fraction (0–1] of the referenced chunks, chosen at random. */
  readDataSubset?: number
  /** Fail when a source's newest snapshot is older than this (ms): the RPO. */
  maxAge?: number
  /** The clock (tests); default now. */
  now?: Date
  /** Reader private key files; without any, KLUIS_READER_KEY. */
  keyPaths?: string[]
}

export interface CheckResult {
  snapshots: number
  chunksReferenced: number
  chunksRead: number
  unreferencedChunks: number
  /** One line per bad object; empty when the repository is sound. */
  problems: string[]
  /**
   * What an auditor should know, reported but not a failure: the storage's posture
   * (versioning off, no object lock or one shorter than the retention window) and keys
   * older than objectives.key-max-age.
   */
  warnings: string[]
  /** Hours since the newest snapshot of the source backed up longest ago; undefined without snapshots. */
  newestSnapshotAgeHours: number | undefined
}

/**
 * How long backups are kept: 30 daily and 12 monthly snapshots reach back a year. Object lock
 * shorter than this lets data that a kept snapshot needs be deleted.
 */
export const RETENTION_DAYS = 366

const READ_CONCURRENCY = 4

/**
 * Verifies the repository: every index is signed by the trusted writer, every object it
 * names exists with the recorded size; with readData, every chunk decrypts and matches its
 * HMAC and every manifest decrypts and verifies. Reports every problem, not just the first.
 */
export async function check(
  config: KluisConfig,
  options: CheckOptions,
  reporter: Reporter,
  env: NodeJS.ProcessEnv,
): Promise<CheckResult> {
  const writer = await loadWriterPublicKey(config)
  const readerKeys = options.readData
    ? await loadReaderPrivateKeys(options.keyPaths ?? [], env)
    : undefined
  const repository = await openRepository(config, env)
  return whileReading(repository.storage, 'check', reporter, async () => {
    const problems: string[] = []
    const record = (error: unknown) => {
      if (error instanceof IntegrityError || error instanceof KeyError) problems.push(error.message)
      else throw error
    }

    const indexes: SnapshotIndex[] = []
    for (const id of await repository.listSnapshotIds()) {
      await repository.readIndex(id, writer).then((index) => indexes.push(index), record)
    }
    reporter.info(`${indexes.length} snapshot(s) with a valid signature`)

    const stored = await repository.listChunks()
    const referenced = new Map<string, { size: number; group: string }>()
    const missing = new Set<string>()
    for (const index of indexes) {
      for (const [group, recorded] of Object.entries(index.manifests)) {
        const object = objectNames.manifest(index.id, group)
        const actual = await repository.storage.stat(object)
        if (actual?.size !== recorded.size) {
          problems.push(`${object}: ${actual ? 'has the wrong size' : 'is missing'}`)
        }
      }
      for (const source of index.sources) {
        for (const stream of source.streams) {
          for (const [id, size, storedSize] of stream.chunks) {
            referenced.set(id, { size, group: source.group })
            const actual = stored.get(id)
            if (actual === undefined) {
              missing.add(id)
              problems.push(
                `${objectNames.chunk(id)}: is missing (snapshot ${index.id.slice(0, 8)}, source ${source.name})`,
              )
            } else if (actual !== storedSize) {
              problems.push(
                `${objectNames.chunk(id)}: has size ${actual}, the index records ${storedSize}`,
              )
            }
          }
        }
      }
    }

    let chunksRead = 0
    if (readerKeys) {
      // Every manifest must decrypt and verify; they also carry each group's dedup key.
      const dedupKeys = new Map<string, Buffer>()
      for (const index of indexes) {
        for (const group of Object.keys(index.manifests)) {
          await repository.readManifest(index, group, readerKeys, writer).then((manifest) => {
            if (!dedupKeys.has(group))
              dedupKeys.set(group, Buffer.from(manifest.dedupKey, 'base64'))
          }, record)
        }
      }
      const opener = new ChunkOpener(readerKeys)
      const toRead = subset(
        [...referenced].filter(([id, chunk]) => !missing.has(id) && dedupKeys.get(chunk.group)),
        options.readDataSubset ?? 1,
      )
      const results = mapOrdered(toRead, READ_CONCURRENCY, ([id, chunk]) =>
        readChunk(repository, opener, id, chunk.size, dedupKeys.get(chunk.group) as Buffer).then(
          () => undefined,
          (error: unknown) => error,
        ),
      )
      for await (const error of results) {
        chunksRead++
        if (error) record(error)
      }
    }

    const now = options.now ?? new Date()
    const maxAge = options.maxAge ?? config.objectives.rpo
    const ages = sourceAges(config, indexes, now)
    if (maxAge !== undefined) problems.push(...rpoFailures(ages, maxAge, 'RPO'))
    const warnings = [
      ...(await repository.storage.posture(RETENTION_DAYS)).map((warning) => `storage: ${warning}`),
      ...(await keyAgeWarnings(config, now)),
    ]
    const renewal = await objectLockRenewalWarning(repository, now)
    if (renewal) warnings.push(`storage: ${renewal}`)
    for (const warning of warnings) reporter.warn(warning)
    const unreferencedChunks = [...stored.keys()].filter((id) => !referenced.has(id)).length
    if (unreferencedChunks > 0) {
      reporter.info(
        `${unreferencedChunks} chunk(s) are not referenced by any snapshot (an interrupted backup; prune removes them)`,
      )
    }
    return {
      snapshots: indexes.length,
      chunksReferenced: referenced.size,
      chunksRead,
      unreferencedChunks,
      problems,
      warnings,
      newestSnapshotAgeHours: stalestAgeHours(ages),
    }
  })
}

async function readChunk(
  repository: Repository,
  opener: ChunkOpener,
  id: string,
  size: number,
  dedupKey: Buffer,
): Promise<void> {
  try {
    await decodeChunk(await repository.getChunk(id), id, size, opener, dedupKey)
  } catch (error) {
    if (error instanceof StorageError)
      throw new IntegrityError(objectNames.chunk(id), error.message)
    throw error
  }
}

/** A random `fraction` of the items (at least one when there are any): --read-data-subset. */
function subset<T>(items: T[], fraction: number): T[] {
  if (fraction >= 1) return items
  const shuffled = [...items]
  for (let i = shuffled.length - 1; i > 0; i--) {
    const j = randomInt(i + 1)
    ;[shuffled[i], shuffled[j]] = [shuffled[j] as T, shuffled[i] as T]
  }
  return shuffled.slice(0, Math.max(1, Math.ceil(items.length * fraction)))
}

/** Keys older than objectives.key-max-age, named so the operator knows which to rotate. */
async function keyAgeWarnings(config: KluisConfig, now: Date): Promise<string[]> {
  const maxAge = config.objectives.keyMaxAge
  if (maxAge === undefined) return []
  const keys: Array<{ role: string; key: PublicKey }> = [
    { role: 'writer', key: await loadWriterPublicKey(config) },
  ]
  for (const group of config.keys.readers.keys()) {
    for (const key of await loadReaderKeys(config, group))
      keys.push({ role: `reader (${group})`, key })
  }
  const seen = new Set<string>()
  const warnings: string[] = []
  for (const { role, key } of keys) {
    const fingerprint = fingerprintOf(key)
    if (seen.has(fingerprint)) continue
    seen.add(fingerprint)
    const age = now.getTime() - key.getCreationTime().getTime()
    if (age > maxAge) {
      warnings.push(
        `the ${role} key ${fingerprint} is ${Math.floor(age / 86_400_000)} days old, older than objectives.key-max-age (${Math.floor(maxAge / 86_400_000)} days): rotate it`,
      )
    }
  }
  return warnings
}
