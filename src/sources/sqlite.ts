import { createReadStream, createWriteStream } from 'node:fs'
import { stat } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { z } from 'zod'
import type { SourceConfig } from '../config/config.js'
import { IntegrityError, SourceError } from '../core/errors.js'
import { plural } from '../core/format.js'
import { temporaryDirectory } from '../core/interrupt.js'
import {
  onlyStream,
  parseFacts,
  type RestoreSummary,
  type SourceDriver,
  type SourceReading,
  safeFileName,
} from './source.js'

type SqliteConfig = Extract<SourceConfig, { type: 'sqlite' }>

const sqliteFactsSchema = z.object({
  engine: z.literal('sqlite'),
  version: z.string(),
  file: z.string(),
  pageSize: z.number(),
  tables: z.record(z.string(), z.number()),
})
export type SqliteFacts = z.infer<typeof sqliteFactsSchema>

// node:sqlite is loaded on first use so that commands without SQLite never touch it.
async function sqliteModule(): Promise<typeof import('node:sqlite')> {
  return import('node:sqlite')
}

/**
 * A consistent copy through SQLite's online backup API while other processes keep writing.
 * A large step (`rate`) copies in few passes: the default of 100 pages restarts forever under
 * a busy writer. The copy is taken into a temporary file, its facts read, then streamed.
 */
export const sqliteDriver: SourceDriver<SqliteConfig> = {
  async read(config, context): Promise<SourceReading> {
    const path = context.resolvePath(config.path)
    const info = await stat(path).catch(() => undefined)
    if (!info?.isFile()) {
      throw new SourceError(
        `source '${config.name}': SQLite database ${config.path} does not exist`,
        'check `path` of the source (relative to the configuration file)',
      )
    }
    const { DatabaseSync, backup } = await sqliteModule()
    const temporary = temporaryDirectory(join(context.temporaryDirectory, 'kluis-sqlite-'))
    const copy = join(temporary.path, basename(path))
    context.reporter.debug(`copying ${config.path} to ${copy} with SQLite's online backup API`)
    let facts: SqliteFacts
    try {
      const database = new DatabaseSync(path, { readOnly: true, timeout: 30_000 })
      try {
        await backup(database, copy, { rate: 1_000_000_000 })
      } finally {
        database.close()
      }
      facts = readFacts(new DatabaseSync(copy, { readOnly: true }), basename(path))
    } catch (error) {
      await temporary.remove()
      if (error instanceof SourceError) throw error
      throw new SourceError(
        `source '${config.name}': cannot copy SQLite database ${config.path}: ${(error as Error).message}`,
        'check that the file is a SQLite database and readable by this user',
      )
    }
    return {
      streams: [{ name: 'database', data: createReadStream(copy, { highWaterMark: 1024 * 1024 }) }],
      facts: () => ({ ...facts }),
      close: temporary.remove,
    }
  },

  async restore(streams, directory, facts): Promise<RestoreSummary> {
    const expected = parseFacts(sqliteFactsSchema, facts, 'sqlite')
    const stream = onlyStream(streams, 'database')
    const file = join(directory, safeFileName(basename(expected.file), 'database.sqlite'))
    await pipeline(stream.data, createWriteStream(file, { flags: 'wx' }))
    const { DatabaseSync } = await sqliteModule()
    const database = new DatabaseSync(file)
    try {
      const rows = database.prepare('PRAGMA integrity_check').all() as Array<
        Record<string, unknown>
      >
      const verdict = rows.map((row) => Object.values(row)[0]).join('; ')
      if (verdict !== 'ok') {
        throw new IntegrityError(
          expected.file,
          `restored database fails PRAGMA integrity_check: ${verdict}`,
        )
      }
      const actual = readFacts(database, expected.file, false)
      for (const [table, count] of Object.entries(expected.tables)) {
        if (actual.tables[table] !== count) {
          throw new IntegrityError(
            expected.file,
            `table ${table} has ${actual.tables[table] ?? 'no'} rows after restore, the backup recorded ${count}`,
          )
        }
      }
      const tables = Object.keys(actual.tables).length
      return {
        description: `${basename(file)} (${plural(tables, 'table')}, integrity ok)`,
      }
    } finally {
      database.close()
    }
  },
}

function readFacts(
  database: import('node:sqlite').DatabaseSync,
  file: string,
  close = true,
): SqliteFacts {
  try {
    const version = (database.prepare('SELECT sqlite_version() AS v').get() as { v: string }).v
    const pageSize = (database.prepare('PRAGMA page_size').get() as { page_size: number }).page_size
    const names = database
      .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
      .all() as Array<{ name: string }>
    const tables: Record<string, number> = {}
    for (const { name } of names) {
      const quoted = `"${name.replaceAll('"', '""')}"`
      tables[name] = Number(
        (database.prepare(`SELECT count(*) AS n FROM ${quoted}`).get() as { n: number }).n,
      )
    }
    return { engine: 'sqlite', version, file, pageSize, tables }
  } finally {
    if (close) database.close()
  }
}
