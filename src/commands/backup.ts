import { createHash } from 'node:crypto'
import { hostname } from 'node:os'
import { Chunker, gearTable } from '../chunker/fastcdc.js'
import {
  type KluisConfig,
  requireSourceSettings,
  type SourceConfig,
  sourceGroup,
} from '../config/config.js'
import { loadReaderKeys, loadWriterKey } from '../config/key-material.js'
import { TaskPool } from '../core/concurrency.js'
import { onInterrupt } from '../core/interrupt.js'
import type { Reporter } from '../core/reporter.js'
import { ChunkSealer } from '../crypto/chunk-cipher.js'
import type { PrivateKey, PublicKey } from '../crypto/keys.js'
import { chunkId, encodeChunk } from '../repository/chunk-codec.js'
import {
  type ChunkRef,
  type IndexStream,
  objectNames,
  type SnapshotIndex,
  type SnapshotManifest,
} from '../repository/format.js'
import { RepositoryLock } from '../repository/locks.js'
import { newSnapshotId, type Repository } from '../repository/repository.js'
import { driverFor } from '../sources/drivers.js'
import type { SourceContext } from '../sources/source.js'
import { openRepository, selectSources, sourceContext } from './common.js'
import { LOCK_WAIT_MS, lockReports } from './locking.js'

export interface BackupOptions {
  /** Only these sources (all when empty). */
  sources?: string[]
  /** The snapshot's time (default now). */
  time?: Date
  host?: string
}

export interface SourceBackupResult {
  name: string
  type: string
  /** Bytes of source data read. */
  size: number
  chunks: number
  newChunks: number
  /** Bytes of source data in chunks that were new. */
  dataAdded: number
  /** Bytes written to storage for new chunks. */
  storedAdded: number
}

export interface BackupResult {
  snapshotId: string
  time: string
  host: string
  sources: SourceBackupResult[]
  /** Bytes of source data in the snapshot. */
  bytesTotal: number
  /** Bytes this backup added to the repository (new chunks, manifest and index). */
  bytesAdded: number
  dataAdded: number
  durationSeconds: number
}

interface GroupWriter {
  readers: PublicKey[]
  chunker: Chunker
  dedupKey: Buffer
  sealer: ChunkSealer
  /** What this snapshot's manifest for the group will hold. */
  manifestSources: SnapshotManifest['sources']
}

export async function backup(
  config: KluisConfig,
  options: BackupOptions,
  reporter: Reporter,
  env: NodeJS.ProcessEnv,
): Promise<BackupResult> {
  const sources = selectSources(config.sources, options.sources)
  for (const source of sources) requireSourceSettings(config, source)
  const writer = await loadWriterKey(config, env)
  const repository = await openRepository(config, env)
  // Shared: backups run side by side; a prune (exclusive) waits until they are done.
  const lock = await RepositoryLock.acquire(repository.storage, {
    kind: 'shared',
    command: 'backup',
    wait: LOCK_WAIT_MS,
    ...lockReports(reporter),
  })
  const releaseOnInterrupt = onInterrupt(() => lock.release())
  try {
    return await backupLocked(config, sources, writer, repository, lock, options, reporter, env)
  } finally {
    releaseOnInterrupt()
    await lock.release()
  }
}

async function backupLocked(
  config: KluisConfig,
  sources: SourceConfig[],
  writer: PrivateKey,
  repository: Repository,
  lock: RepositoryLock,
  options: BackupOptions,
  reporter: Reporter,
  env: NodeJS.ProcessEnv,
): Promise<BackupResult> {
  const started = performance.now()
  const id = newSnapshotId()
  const time = (options.time ?? new Date()).toISOString()
  const host = options.host ?? hostname()
  const known = await repository.listChunks()
  const groups = new Map<string, GroupWriter>()
  const context = sourceContext(config, reporter, env)

  const indexSources: SnapshotIndex['sources'] = []
  const results: SourceBackupResult[] = []
  for (const source of sources) {
    const group = sourceGroup(source)
    let groupWriter = groups.get(group)
    if (!groupWriter) {
      groupWriter = await openGroup(config, repository, group, writer)
      groups.set(group, groupWriter)
    }
    reporter.info(`backing up ${source.type} source '${source.name}'`)
    const { readers, dedupKey } = groupWriter
    const saved = await backupSource(
      source,
      { ...context, backup: { snapshotId: id, time, host, readers, writer, dedupKey } },
      repository,
      groupWriter,
      known,
      config.compressionLevel,
    )
    indexSources.push({
      name: source.name,
      type: source.type,
      group,
      streams: saved.indexStreams,
      ...(saved.commit ? { commit: saved.commit } : {}),
    })
    groupWriter.manifestSources.push({
      name: source.name,
      type: source.type,
      facts: saved.facts,
      streams: saved.manifestStreams,
    })
    results.push(saved.result)
  }

  // A lock lost (expired, removed by unlock) means a prune may have deleted chunks we reuse.
  lock.assertHeld()
  const index = await repository.writeSnapshot(
    { kluis: 'snapshot-index', version: 1, id, time, host, sources: indexSources },
    [...groups].map(([group, { readers, dedupKey, manifestSources }]) => ({
      readers,
      manifest: {
        kluis: 'snapshot-manifest',
        version: 1,
        snapshot: id,
        group,
        dedupKey: dedupKey.toString('base64'),
        sources: manifestSources,
      },
    })),
    writer,
  )
  const indexSize = (await repository.storage.stat(objectNames.index(id)))?.size ?? 0
  const stored = results.reduce((sum, r) => sum + r.storedAdded, 0)
  return {
    snapshotId: id,
    time,
    host,
    sources: results,
    bytesTotal: results.reduce((sum, r) => sum + r.size, 0),
    bytesAdded:
      stored + Object.values(index.manifests).reduce((sum, m) => sum + m.size, 0) + indexSize,
    dataAdded: results.reduce((sum, r) => sum + r.dataAdded, 0),
    durationSeconds: (performance.now() - started) / 1000,
  }
}

async function openGroup(
  config: KluisConfig,
  repository: Repository,
  group: string,
  writer: PrivateKey,
): Promise<GroupWriter> {
  const readers = await loadReaderKeys(config, group)
  const dedupKey = await repository.dedupKey(group, [writer], writer.toPublic())
  return {
    readers,
    dedupKey,
    chunker: new Chunker(gearTable(dedupKey), repository.chunker),
    sealer: await ChunkSealer.create(readers),
    manifestSources: [],
  }
}

async function backupSource(
  source: SourceConfig,
  context: SourceContext,
  repository: Repository,
  group: GroupWriter,
  known: Map<string, number>,
  level: number,
) {
  const reading = await driverFor(source.type).read(source, context)
  try {
    const indexStreams: IndexStream[] = []
    const manifestStreams: SnapshotManifest['sources'][number]['streams'] = []
    const result: SourceBackupResult = {
      name: source.name,
      type: source.type,
      size: 0,
      chunks: 0,
      newChunks: 0,
      dataAdded: 0,
      storedAdded: 0,
    }
    for (const stream of reading.streams) {
      const saved = await storeStream(stream.data, repository, group, known, level, result)
      indexStreams.push({ name: stream.name, size: saved.size, chunks: saved.chunks })
      manifestStreams.push({ name: stream.name, size: saved.size, sha256: saved.sha256 })
      result.size += saved.size
    }
    return {
      indexStreams,
      manifestStreams,
      facts: await reading.facts(),
      commit: reading.commit?.(),
      result,
    }
  } finally {
    await reading.close()
  }
}

/**
 * Splits a stream into chunks and stores the new ones. The ordered list of chunk references
 * is built as the stream is read; stored sizes are filled in as uploads finish.
 */
async function storeStream(
  data: AsyncIterable<Buffer>,
  repository: Repository,
  group: GroupWriter,
  known: Map<string, number>,
  level: number,
  result: SourceBackupResult,
): Promise<{ size: number; sha256: string; chunks: ChunkRef[] }> {
  const hash = createHash('sha256')
  let size = 0
  async function* hashed(): AsyncGenerator<Buffer> {
    for await (const piece of data) {
      hash.update(piece)
      size += piece.length
      yield piece
    }
  }
  const chunks: ChunkRef[] = []
  // Chunks compressed, encrypted and uploaded at once: the storage's concurrency.
  const pool = new TaskPool(repository.storage.concurrency)
  const inFlight = new Set<string>()
  const repeats: ChunkRef[] = [] // chunks seen again while their first copy was uploading
  for await (const chunk of group.chunker.chunks(hashed())) {
    const id = chunkId(group.dedupKey, chunk)
    const ref: ChunkRef = [id, chunk.length, known.get(id) ?? 0]
    chunks.push(ref)
    result.chunks++
    if (known.has(id)) continue
    if (inFlight.has(id)) {
      repeats.push(ref)
      continue
    }
    inFlight.add(id)
    await pool.run(async () => {
      const message = await encodeChunk(chunk, group.sealer, level)
      const created = await repository.putChunk(id, message)
      // Another backup may have stored the same chunk a moment ago: keep its size.
      const stored = created ? message.length : ((await repository.chunkSize(id)) ?? message.length)
      ref[2] = stored
      known.set(id, stored)
      if (created) {
        result.newChunks++
        result.dataAdded += chunk.length
        result.storedAdded += stored
      }
    })
  }
  await pool.drain()
  for (const ref of repeats) ref[2] = known.get(ref[0]) ?? 0
  return { size, sha256: hash.digest('hex'), chunks }
}
