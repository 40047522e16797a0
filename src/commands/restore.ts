import { mkdir, readdir, rename, stat } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import type { KluisConfig } from '../config/config.js'
import { loadReaderPrivateKeys, loadWriterPublicKey } from '../config/key-material.js'
import { ConfigError, IntegrityError, RefusedError, SourceError } from '../core/errors.js'
import { temporaryDirectory } from '../core/interrupt.js'
import type { Reporter } from '../core/reporter.js'
import { ChunkOpener } from '../crypto/chunk-cipher.js'
import { objectNames, type SnapshotIndex, type SnapshotManifest } from '../repository/format.js'
import type { Repository } from '../repository/repository.js'
import { readStream } from '../repository/stream-reader.js'
import { databaseScheme, parseDatabaseUrl } from '../sources/database/database-url.js'
import { driverForStored } from '../sources/drivers.js'
import type { SourceContext, SourceDriver, SourceStream } from '../sources/source.js'
import { openRepository, sourceContext } from './common.js'
import { whileReading } from './locking.js'
import { type SnapshotChoice, selectSnapshot } from './select-snapshot.js'

export interface RestoreOptions extends SnapshotChoice {
  target: string
  force?: boolean
  /** Reader private key files; without any, KLUIS_READER_KEY. */
  keyPaths?: string[]
}

export interface RestoreResult {
  snapshotId: string
  time: string
  target: string
  sources: Array<{ name: string; type: string; path: string; size: number; description: string }>
  durationSeconds: number
}

/**
 * Restores the chosen snapshot's sources into the folder `target/<source name>`: everything is
 * first written to a staging folder beside the target and checked (signatures, chunk HMACs,
 * stream SHA-256, the source's own checks); only then is it moved into the target. A failure
 * leaves the target as it was. A database URL as target restores one database source into
 * that server instead (see `restoreToServer`).
 */
export async function restore(
  config: KluisConfig,
  options: RestoreOptions,
  reporter: Reporter,
  env: NodeJS.ProcessEnv,
): Promise<RestoreResult> {
  const started = performance.now()
  const writer = await loadWriterPublicKey(config)
  const readerKeys = await loadReaderPrivateKeys(options.keyPaths ?? [], env)
  const repository = await openRepository(config, env)
  return whileReading(repository.storage, 'restore', reporter, async () => {
    const index = await selectSnapshot(repository, writer, options)
    const wanted = options.sources?.length ? options.sources : index.sources.map((s) => s.name)
    const missing = wanted.filter((name) => !index.sources.some((s) => s.name === name))
    if (missing.length > 0) {
      throw new ConfigError(
        `snapshot ${index.id.slice(0, 8)} has no source ${missing.join(', ')}`,
        `it holds: ${index.sources.map((s) => s.name).join(', ')}`,
      )
    }
    const chosen = index.sources.filter((s) => wanted.includes(s.name))
    const context = {
      ...sourceContext(config, reporter, env),
      restore: { readerKeys, writer },
    }
    const opener = new ChunkOpener(readerKeys)
    // Per key group: its manifest (which carries the dedup key), verified before any data is read.
    const manifests = new Map<string, SnapshotManifest>()
    for (const group of new Set(chosen.map((s) => s.group))) {
      manifests.set(group, await repository.readManifest(index, group, readerKeys, writer))
    }
    const open = (source: IndexSource) =>
      openSource(repository, opener, index, source, manifests.get(source.group))

    if (databaseScheme(options.target)) {
      return restoreToServer(options, chosen, open, context, started, index)
    }
    const target = resolve(options.target)
    await refuseNonEmpty(target, options.force ?? false)
    await mkdir(dirname(target), { recursive: true })
    const staged = temporaryDirectory(join(dirname(target), '.kluis-restore-'))
    const staging = staged.path
    try {
      const restored: RestoreResult['sources'] = []
      for (const source of chosen) {
        const { driver, streams, facts } = open(source)
        reporter.info(`restoring ${source.type} source '${source.name}'`)
        const directory = join(staging, source.name)
        await mkdir(directory)
        const configured = config.sources.find(
          (s) => s.name === source.name && s.type === source.type,
        )
        const summary = await driver.restore(streams, directory, facts, {
          ...context,
          restore: { ...context.restore, ...(configured ? { source: configured } : {}) },
        })
        restored.push({
          name: source.name,
          type: source.type,
          path: join(target, source.name),
          size: sourceSize(source),
          description: summary.description,
        })
      }
      await moveIntoPlace(
        staging,
        target,
        restored.map((s) => s.name),
      )
      return {
        snapshotId: index.id,
        time: index.time,
        target,
        sources: restored,
        durationSeconds: (performance.now() - started) / 1000,
      }
    } finally {
      await staged.remove()
    }
  })
}

export type IndexSource = SnapshotIndex['sources'][number]

export interface OpenedSource {
  driver: SourceDriver
  /** Streams that verify every chunk before yielding it, and the whole stream at its end. */
  streams: SourceStream[]
  facts: Record<string, unknown>
}

/** A source of a snapshot, its streams verifying as they are read (also used by restore-test). */
export function openSource(
  repository: Repository,
  opener: ChunkOpener,
  index: SnapshotIndex,
  source: IndexSource,
  manifest: SnapshotManifest | undefined,
): OpenedSource {
  const manifestObject = objectNames.manifest(index.id, source.group)
  const entry = manifest?.sources.find((s) => s.name === source.name)
  if (!manifest || !entry) {
    throw new IntegrityError(manifestObject, `has no entry for source ${source.name}`)
  }
  const driver = driverForStored(source.type)
  if (!driver) {
    throw new SourceError(
      `source ${source.name} has type '${source.type}', which this kluis cannot restore`,
      'use a newer kluis release',
    )
  }
  const dedupKey = Buffer.from(manifest.dedupKey, 'base64')
  const streams = source.streams.map((stream) => {
    const expected = entry.streams.find((s) => s.name === stream.name)
    if (!expected) {
      throw new IntegrityError(manifestObject, `has no stream ${source.name}/${stream.name}`)
    }
    const label = `snapshot ${index.id.slice(0, 8)} source ${source.name} stream ${stream.name}`
    return {
      name: stream.name,
      data: readStream(repository, opener, dedupKey, stream, expected, label),
    }
  })
  return { driver, streams, facts: entry.facts }
}

/**
 * Restores one database source into a server (`--target postgres://…` or `mysql://…`). The
 * driver creates the target database when missing and refuses a non-empty one without --force.
 */
async function restoreToServer(
  options: RestoreOptions,
  chosen: IndexSource[],
  open: (source: IndexSource) => OpenedSource,
  context: SourceContext,
  started: number,
  index: SnapshotIndex,
): Promise<RestoreResult> {
  const scheme = databaseScheme(options.target)
  const [source] = chosen
  if (!source || chosen.length !== 1) {
    throw new ConfigError(
      `a database URL as --target takes one source; snapshot ${index.id.slice(0, 8)} holds ${chosen.map((s) => s.name).join(', ')}`,
      'name the database source with --source NAME',
    )
  }
  const target = parseDatabaseUrl(options.target, '--target')
  const { driver, streams, facts } = open(source)
  if (!driver.server || driver.server.scheme !== scheme) {
    throw new ConfigError(
      `source '${source.name}' is a ${source.type} source and cannot be restored into ${target.display}`,
      driver.server
        ? `give a ${driver.server.scheme}:// URL as --target`
        : 'give a directory as --target',
    )
  }
  context.reporter.info(`restoring ${source.type} source '${source.name}' into ${target.display}`)
  const summary = await driver.server.restore(streams, target, facts, context, {
    force: options.force ?? false,
  })
  return {
    snapshotId: index.id,
    time: index.time,
    target: target.display,
    sources: [
      {
        name: source.name,
        type: source.type,
        path: target.display,
        size: sourceSize(source),
        description: summary.description,
      },
    ],
    durationSeconds: (performance.now() - started) / 1000,
  }
}

function sourceSize(source: IndexSource): number {
  return source.streams.reduce((sum, s) => sum + s.size, 0)
}

async function refuseNonEmpty(target: string, force: boolean): Promise<void> {
  const info = await stat(target).catch(() => undefined)
  if (!info) return
  if (!info.isDirectory())
    throw new RefusedError(`restore target ${target} exists and is not a directory`)
  if (!force && (await readdir(target)).length > 0) {
    throw new RefusedError(
      `restore target ${target} is not empty`,
      'choose an empty or new directory, or pass --force to replace the restored sources in it',
    )
  }
}

/** Moves verified sources from staging into the target, replacing same-named ones (--force). */
async function moveIntoPlace(staging: string, target: string, names: string[]): Promise<void> {
  await mkdir(target, { recursive: true })
  for (const name of names) {
    const destination = join(target, name)
    if (await stat(destination).catch(() => undefined)) {
      const old = join(staging, `.replaced-${name}`)
      await rename(destination, old)
    }
    await rename(join(staging, name), destination)
  }
}
