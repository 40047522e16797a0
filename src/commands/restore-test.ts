import { randomBytes, randomInt } from 'node:crypto'
import { mkdir, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { type KluisConfig, restoreTestUrl } from '../config/config.js'
import { loadReaderPrivateKeys, loadWriterPublicKey } from '../config/key-material.js'
import { describeSystemError, errorMessage, IntegrityError, KluisError } from '../core/errors.js'
import { formatDuration } from '../core/format.js'
import { onInterrupt, temporaryDirectory } from '../core/interrupt.js'
import type { Reporter } from '../core/reporter.js'
import { ChunkOpener } from '../crypto/chunk-cipher.js'
import type { PrivateKey, PublicKey } from '../crypto/keys.js'
import type { SnapshotIndex } from '../repository/format.js'
import type { Repository } from '../repository/repository.js'
import { type DatabaseUrl, parseDatabaseUrl } from '../sources/database/database-url.js'
import {
  type SourceContext,
  type SourceDriver,
  type SourceStream,
  safeFileName,
} from '../sources/source.js'
import { openRepository, sourceContext } from './common.js'
import { whileReading } from './locking.js'
import { rpoFailures, sourceAges, stalestAgeHours } from './objectives.js'
import { type IndexSource, openSource } from './restore.js'
import { type SnapshotChoice, selectSnapshot } from './select-snapshot.js'

export interface RestoreTestOptions {
  /** A snapshot id (or unique prefix); default the latest. */
  snapshot?: string
  /** The latest snapshot at or before this time. */
  at?: Date
  /** Also test one randomly chosen older signed snapshot. */
  alsoRandomOlder?: boolean
  /** Write the result as JSON to this file (relative to the current directory). */
  reportFile?: string
  /** Reader private key files; without any, KLUIS_READER_KEY. */
  keyPaths?: string[]
  /** The clock (tests); default now. */
  now?: Date
}

export interface RestoreTestSource {
  name: string
  type: string
  /** The snapshot this source was restored from (the chosen one, or the random older one). */
  snapshot: string
  /** Time to restore and verify it (scratch cleanup not included). */
  seconds: number
  passed: boolean
  /** What was restored and verified, or what failed. */
  detail: string
}

export interface RestoreTestResult {
  snapshot: { id: string; time: string }
  /** The random older snapshot that was also tested (--also-random-older), if there was one. */
  older?: { id: string; time: string }
  sources: RestoreTestSource[]
  /** The demonstrated RTO: the time to restore and verify every source of the chosen snapshot. */
  rtoSeconds: number
  /** The demonstrated RPO: the age of the newest signed snapshot of the source backed up longest ago. */
  rpoHours: number | undefined
  /** The configured objectives, in the same units (seconds, hours). */
  objectives: { rto?: number; rpo?: number }
  /** One line per failed check or objective, each naming what failed. */
  failures: string[]
  passed: boolean
}

/** Prefix of the scratch databases; a leftover one is recognisable (and safe to drop). */
export const SCRATCH_DATABASE_PREFIX = 'kluis_restore_test_'

interface Run {
  config: KluisConfig
  repository: Repository
  opener: ChunkOpener
  readerKeys: PrivateKey[]
  writer: PublicKey
  context: SourceContext
}

/**
 * Proves that the backups can be restored: every source of the chosen snapshot is restored
 * into a scratch target (a temporary folder, or a new database on the configured scratch
 * server) with every check restore does (chunk HMACs, stream SHA-256, the driver's own checks
 * such as row counts), timed, and the scratch target removed again. The times (the RTO it
 * demonstrates) and the age of each source's newest snapshot (the RPO) are compared with
 * `objectives`. Failures are collected, not thrown: the result names every one.
 */
export async function restoreTest(
  config: KluisConfig,
  options: RestoreTestOptions,
  reporter: Reporter,
  env: NodeJS.ProcessEnv,
): Promise<RestoreTestResult> {
  const writer = await loadWriterPublicKey(config)
  const readerKeys = await loadReaderPrivateKeys(options.keyPaths ?? [], env)
  const repository = await openRepository(config, env)
  return whileReading(repository.storage, 'restore-test', reporter, async () => {
    const choice: SnapshotChoice = {
      ...(options.snapshot ? { snapshot: options.snapshot } : {}),
      ...(options.at ? { at: options.at } : {}),
    }
    const chosen = await selectSnapshot(repository, writer, choice)
    const failures: string[] = []
    const indexes = await signedIndexes(repository, writer, failures)
    const run: Run = {
      config,
      repository,
      opener: new ChunkOpener(readerKeys),
      readerKeys,
      writer,
      context: sourceContext(config, reporter, env),
    }

    const sources: RestoreTestSource[] = []
    for (const source of chosen.sources) sources.push(await testSource(run, chosen, source))
    const rtoSeconds = sources.reduce((sum, s) => sum + s.seconds, 0)

    let older: SnapshotIndex | undefined
    if (options.alsoRandomOlder) {
      const candidates = indexes.filter(
        (index) =>
          index.id !== chosen.id &&
          (index.time < chosen.time || (index.time === chosen.time && index.id < chosen.id)),
      )
      older = candidates.length > 0 ? candidates[randomInt(candidates.length)] : undefined
      if (older) {
        reporter.info(`also testing the older snapshot ${older.id.slice(0, 8)} of ${older.time}`)
        for (const source of older.sources) sources.push(await testSource(run, older, source))
      } else {
        reporter.info('there is no older signed snapshot to test')
      }
    }
    for (const source of sources) {
      if (!source.passed) {
        failures.push(
          `source ${source.name} (snapshot ${source.snapshot.slice(0, 8)}): ${source.detail}`,
        )
      }
    }

    const now = options.now ?? new Date()
    const ages = sourceAges(config, indexes, now)
    const { rto, rpo } = config.objectives
    if (rto !== undefined && rtoSeconds * 1000 > rto) {
      failures.push(
        `the restore took ${formatDuration(rtoSeconds)}, longer than ${formatDuration(rto / 1000)} (RTO, objectives.rto)`,
      )
    }
    if (rpo !== undefined) failures.push(...rpoFailures(ages, rpo, 'RPO, objectives.rpo'))
    // Nothing tested is no proof: an empty snapshot cannot pass.
    if (sources.length === 0) failures.push(`snapshot ${chosen.id.slice(0, 8)} holds no source`)
    const result: RestoreTestResult = {
      snapshot: { id: chosen.id, time: chosen.time },
      ...(older ? { older: { id: older.id, time: older.time } } : {}),
      sources,
      rtoSeconds,
      rpoHours: stalestAgeHours(ages),
      objectives: {
        ...(rto !== undefined ? { rto: rto / 1000 } : {}),
        ...(rpo !== undefined ? { rpo: rpo / 3_600_000 } : {}),
      },
      failures,
      passed: failures.length === 0,
    }
    if (options.reportFile) {
      await writeFile(resolve(options.reportFile), `${JSON.stringify(result, null, 2)}\n`)
    }
    return result
  })
}

/** Every index with a valid signature; one that does not verify is a failure of its own. */
async function signedIndexes(
  repository: Repository,
  writer: PublicKey,
  failures: string[],
): Promise<SnapshotIndex[]> {
  const indexes: SnapshotIndex[] = []
  for (const id of await repository.listSnapshotIds()) {
    try {
      indexes.push(await repository.readIndex(id, writer))
    } catch (error) {
      if (error instanceof IntegrityError) failures.push(error.message)
      else throw error
    }
  }
  return indexes
}

/** Restores one source into a scratch target and verifies it; never throws for its failures. */
async function testSource(
  run: Run,
  index: SnapshotIndex,
  source: IndexSource,
): Promise<RestoreTestSource> {
  const { reporter } = run.context
  reporter.info(
    `restore-testing ${source.type} source '${source.name}' of snapshot ${index.id.slice(0, 8)}`,
  )
  const started = performance.now()
  const cleanups: Array<() => Promise<void>> = []
  let seconds = 0
  let outcome: { passed: boolean; detail: string }
  try {
    const detail = await restoreIntoScratch(run, index, source, cleanups)
    seconds = (performance.now() - started) / 1000
    outcome = { passed: true, detail }
  } catch (error) {
    seconds = (performance.now() - started) / 1000
    outcome = { passed: false, detail: describe(error) }
  }
  // Scratch targets are removed after a failure too; one that stays is a failure of its own.
  for (const cleanup of cleanups.reverse()) {
    try {
      await cleanup()
    } catch (error) {
      const detail = `could not remove the scratch target: ${describe(error)}`
      outcome = {
        passed: false,
        detail: outcome.passed ? detail : `${outcome.detail}; ${detail}`,
      }
    }
  }
  reporter.info(
    `  ${source.name}: ${outcome.passed ? 'passed' : 'FAILED'} in ${formatDuration(seconds)}`,
  )
  return {
    name: source.name,
    type: source.type,
    snapshot: index.id,
    seconds,
    ...outcome,
  }
}

function describe(error: unknown): string {
  if (error instanceof KluisError) return error.message
  const system = describeSystemError(error)
  if (system) return system.message
  return `unexpected error: ${errorMessage(error)}`
}

async function restoreIntoScratch(
  run: Run,
  index: SnapshotIndex,
  source: IndexSource,
  cleanups: Array<() => Promise<void>>,
): Promise<string> {
  const manifest = await run.repository.readManifest(
    index,
    source.group,
    run.readerKeys,
    run.writer,
  )
  const { driver, streams, facts } = openSource(run.repository, run.opener, index, source, manifest)
  const configured = run.config.sources.find(
    (s) => s.name === source.name && s.type === source.type,
  )
  const context: SourceContext = {
    ...run.context,
    restore: {
      readerKeys: run.readerKeys,
      writer: run.writer,
      ...(configured ? { source: configured } : {}),
    },
  }
  if (driver.server) {
    const server = driver.server
    const scheme = server.scheme
    const scratch = parseDatabaseUrl(
      restoreTestUrl(run.config, scheme),
      `restore-test.${scheme}-url`,
      scheme,
    )
    const descriptions: string[] = []
    const used = new Set<string>()
    for (const part of databaseParts(source, facts, streams)) {
      const name = `${SCRATCH_DATABASE_PREFIX}${randomBytes(4).toString('hex')}`
      const target = scratch.withDatabase(name)
      const drop = () => dropScratchDatabase(driver, scratch, name, context)
      const forget = onInterrupt(drop)
      cleanups.push(async () => {
        forget()
        await drop()
      })
      for (const s of part.streams) used.add(s.name)
      const summary = await server.restore(part.streams, target, part.facts, context, {
        force: false,
      })
      descriptions.push(summary.description)
    }
    // A stream no restore read (PostgreSQL's roles) is still read to its end: verified.
    for (const stream of streams.filter((s) => !used.has(s.name))) await drain(stream)
    return descriptions.join('; ')
  }
  const staged = temporaryDirectory(join(run.context.temporaryDirectory, 'kluis-restore-test-'))
  cleanups.push(() => staged.remove())
  const directory = join(staged.path, safeFileName(source.name, 'source'))
  await mkdir(directory)
  const summary = await driver.restore(streams, directory, facts, context)
  return summary.description
}

/**
 * What to restore into one scratch database each: a MySQL source is one database; a
 * PostgreSQL source may hold several, each restored on its own (roles are not restored into
 * the scratch server, but their stream is verified).
 */
function databaseParts(
  source: IndexSource,
  facts: Record<string, unknown>,
  streams: SourceStream[],
): Array<{ facts: Record<string, unknown>; streams: SourceStream[] }> {
  if (source.type !== 'postgres') return [{ facts, streams }]
  const databases = Array.isArray(facts.databases) ? (facts.databases as unknown[]) : []
  if (databases.length === 0) {
    throw new IntegrityError(
      `postgres facts in the manifest`,
      `of source ${source.name} name no database`,
    )
  }
  return databases.map((database) => {
    const streamName = (database as { stream?: unknown }).stream
    const { globals: _globals, ...rest } = facts
    return {
      facts: { ...rest, databases: [database] },
      streams: streams.filter((s) => s.name === streamName),
    }
  })
}

async function drain(stream: SourceStream): Promise<void> {
  for await (const _ of stream.data) {
    // Reading is the check: each chunk's HMAC, and the stream's SHA-256 at its end.
  }
}

/** Drops a scratch database through its driver; it may not exist (the restore failed first). */
async function dropScratchDatabase(
  driver: SourceDriver,
  scratch: DatabaseUrl,
  name: string,
  context: SourceContext,
): Promise<void> {
  if (!name.startsWith(SCRATCH_DATABASE_PREFIX)) throw new Error(`refusing to drop ${name}`)
  await driver.server?.drop(scratch.withDatabase(name), context)
}
