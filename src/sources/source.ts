import type { z } from 'zod'
import type { SourceConfig } from '../config/config.js'
import { IntegrityError, SourceError } from '../core/errors.js'
import type { Reporter } from '../core/reporter.js'
import type { PrivateKey, PublicKey } from '../crypto/keys.js'
import type { DatabaseScheme, DatabaseUrl } from './database/database-url.js'

/** A byte stream a source produces at backup and consumes at restore. */
export interface SourceStream {
  name: string
  data: AsyncIterable<Buffer>
}

/** One run of a source's backup: streams to read in order, then facts about what was read. */
export interface SourceReading {
  streams: SourceStream[]
  /** Facts for the manifest (engine version, tables and row counts, file list). Complete once every stream was read. */
  facts(): Record<string, unknown> | Promise<Record<string, unknown>>
  /** Releases temporary files; called after success and failure alike. */
  close(): Promise<void>
  /** A git-config source's commit, recorded in the signed index. */
  commit?(): string | undefined
}

export interface SourceContext {
  reporter: Reporter
  /** Folder for temporary files. */
  temporaryDirectory: string
  /** Resolves a path from the configuration. */
  resolvePath(path: string): string
  /** The environment: PATH to find tools, and what child processes inherit. */
  env: NodeJS.ProcessEnv
  /** During a backup: the snapshot being written, and the keys of the source's key group. */
  backup?: {
    snapshotId: string
    time: string
    host: string
    readers: PublicKey[]
    writer: PrivateKey
    /** The group's secret dedup key: keys comparisons that must not reveal content. */
    dedupKey: Buffer
  }
  /** During a restore: keys to open what a driver encrypted itself. */
  restore?: {
    readerKeys: PrivateKey[]
    writer: PublicKey
    /** The source's current configuration, when it still has one (remote, token). */
    source?: SourceConfig
  }
}

/**
 * A kind of source (sqlite, files, …): turns a configured thing into streams and back.
 * `restore` writes only below `directory`, an empty staging folder that the caller moves into
 * the target after every check passed.
 */
export interface SourceDriver<C extends SourceConfig = SourceConfig> {
  read(config: C, context: SourceContext): Promise<SourceReading>
  restore(
    streams: SourceStream[],
    directory: string,
    facts: Record<string, unknown>,
    context: SourceContext,
  ): Promise<RestoreSummary>
  /** Database sources can also restore into a server: the kind of URL they take. */
  server?: {
    scheme: DatabaseScheme
    restore(
      streams: SourceStream[],
      target: DatabaseUrl,
      facts: Record<string, unknown>,
      context: SourceContext,
      options: { force: boolean },
    ): Promise<RestoreSummary>
    /** Drops the database `target` names, if it exists (a restore test's scratch database). */
    drop(target: DatabaseUrl, context: SourceContext): Promise<void>
  }
}

export interface RestoreSummary {
  /** What was restored, for the user (e.g. "app.db, 3 tables" or "120 files"). */
  description: string
}

/** The single stream of a source kind that writes one (sqlite, files). */
export function onlyStream(streams: SourceStream[], kind: string): SourceStream {
  const [stream] = streams
  if (!stream || streams.length !== 1) {
    throw new SourceError(`expected one ${kind} stream, found ${streams.length}`)
  }
  return stream
}

/**
 * A source's facts from a manifest, checked against the shape its driver writes. The manifest is
 * signed, so a mismatch means a writer bug or an incompatible version, reported as such.
 */
export function parseFacts<T>(
  schema: z.ZodType<T>,
  facts: Record<string, unknown>,
  type: string,
): T {
  const parsed = schema.safeParse(facts)
  if (!parsed.success) {
    throw new IntegrityError(
      `${type} facts in the manifest`,
      `do not have the expected shape (${parsed.error.issues[0]?.path.join('.') || 'top level'})`,
      'restore with the kluis release that wrote the snapshot',
    )
  }
  return parsed.data
}

/**
 * A name from a manifest (a database, a file) as a file name in a restore folder. The manifest
 * is signed, but a name is still never allowed to become a path.
 */
export function safeFileName(name: string, fallback: string): string {
  const safe = name.replace(/[/\\\0]/g, '_')
  return safe === '' || safe === '.' || safe === '..' ? fallback : safe
}
