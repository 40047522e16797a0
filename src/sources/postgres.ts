import { createWriteStream } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { z } from 'zod'
import type { SourceConfig } from '../config/config.js'
import { ConfigError, IntegrityError, RefusedError, SourceError } from '../core/errors.js'
import { plural } from '../core/format.js'
import { type DatabaseUrl, parseDatabaseUrl } from './database/database-url.js'
import { besideTool, postgresTool } from './database/postgres-tools.js'
import {
  PSQL_SCRIPT_OPTIONS,
  PsqlSession,
  sqlIdentifier,
  sqlLiteral,
} from './database/psql-session.js'
import type { InstalledTool } from './database/tool-finder.js'
import {
  CONNECTION_HINT,
  feedTool,
  runTool,
  type ToolCommand,
  toolEnvironment,
  toolOutput,
} from './database/tool-process.js'
import {
  parseFacts,
  type RestoreSummary,
  type SourceContext,
  type SourceDriver,
  type SourceReading,
  type SourceStream,
  safeFileName,
} from './source.js'

type PostgresConfig = Extract<SourceConfig, { type: 'postgres' }>

const tableFactsSchema = z.object({ schema: z.string(), name: z.string(), rows: z.number() })
type TableFacts = z.infer<typeof tableFactsSchema>

const databaseFactsSchema = z.object({
  name: z.string(),
  stream: z.string(),
  encoding: z.string(),
  /** Exact row counts, taken in the snapshot pg_dump dumped. */
  tables: z.array(tableFactsSchema),
  largeObjects: z.number(),
})
type DatabaseFacts = z.infer<typeof databaseFactsSchema>

const postgresFactsSchema = z.object({
  engine: z.literal('postgres'),
  server: z.string(),
  serverMajor: z.number(),
  pgDump: z.string(),
  pgDumpMajor: z.number(),
  databases: z.array(databaseFactsSchema),
  /** The stream of roles and tablespaces, when the source has `globals: true`. */
  globals: z.string().optional(),
})
export type PostgresFacts = z.infer<typeof postgresFactsSchema>

const GLOBALS_STREAM = 'globals'
const databaseStream = (name: string) => `database:${name}`

/** Schemas that belong to PostgreSQL itself, as an SQL condition on `n.nspname`. */
const USER_SCHEMA =
  "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp)'"

/** Ordinary tables whose rows pg_dump writes (not those of extensions). */
const TABLES_SQL = `SELECT coalesce(jsonb_agg(jsonb_build_array(n.nspname, c.relname) ORDER BY n.nspname, c.relname), '[]')
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind = 'r' AND ${USER_SCHEMA}
    AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')`

/** Counts per batch: one query per table would make a thousand-table database slow. */
const COUNT_BATCH = 200

/**
 * PostgreSQL through its own tools: `pg_dump --format=custom --compress=0` (chunks are
 * compressed by kluis; a compressed dump would defeat deduplication), streamed. Each database
 * is dumped from a snapshot exported by a transaction that also counts every table's rows, so
 * the counts in the manifest are exactly those of the dump.
 */
export const postgresDriver: SourceDriver<PostgresConfig> = {
  async read(config, context): Promise<SourceReading> {
    const where = `source '${config.name}'`
    const url = parseDatabaseUrl(config.url, where, 'postgres')
    const psql = await postgresTool('psql', undefined, context.env, where)
    const server = await serverInfo(psql, url, context, where)
    const pgDump = await postgresTool(
      'pg_dump',
      server.major,
      context.env,
      `${where} (server ${server.version})`,
    )
    context.reporter.debug(
      `${where}: server ${server.version}, using ${pgDump.path} ${pgDump.version}`,
    )
    const names = await databaseNames(config, url, psql, context, where)

    const databases: DatabaseFacts[] = []
    const streams: SourceStream[] = []
    let globals: string | undefined
    if (config.globals) {
      globals = GLOBALS_STREAM
      streams.push({
        name: GLOBALS_STREAM,
        data: dumpGlobals(besideTool(pgDump, 'pg_dumpall'), url, context, where),
      })
    }
    for (const name of names) {
      const database = url.withDatabase(name)
      streams.push({
        name: databaseStream(name),
        data: dumpDatabase(psql, pgDump, database, context, `${where} database ${name}`, (facts) =>
          databases.push(facts),
        ),
      })
    }
    return {
      streams,
      facts: (): PostgresFacts => ({
        engine: 'postgres',
        server: server.version,
        serverMajor: server.major,
        pgDump: pgDump.version,
        pgDumpMajor: pgDump.major,
        databases,
        ...(globals ? { globals } : {}),
      }),
      async close() {},
    }
  },

  /** Without a server: the archives as files, for pg_restore by hand. */
  async restore(streams, directory, facts): Promise<RestoreSummary> {
    const expected = parseFacts(postgresFactsSchema, facts, 'postgres')
    const files: string[] = []
    for (const stream of streams) {
      const database = expected.databases.find((d) => d.stream === stream.name)
      const file =
        stream.name === expected.globals
          ? 'globals.sql'
          : `${safeFileName(database?.name ?? stream.name, 'database')}.dump`
      await pipeline(stream.data, createWriteStream(join(directory, file), { flags: 'wx' }))
      files.push(file)
    }
    await writeFile(
      join(directory, 'README.txt'),
      `pg_dump archives (custom format) written by pg_dump ${expected.pgDump} from PostgreSQL ${expected.server}.\n` +
        `Load one with: pg_restore --dbname=postgres://USER@HOST/DATABASE --single-transaction FILE.dump\n` +
        (expected.globals
          ? 'Roles and tablespaces: psql --dbname=postgres://USER@HOST/postgres --file=globals.sql\n'
          : ''),
      { flag: 'wx' },
    )
    return { description: `${files.join(', ')} (pg_dump custom format; see README.txt)` }
  },

  server: {
    scheme: 'postgres',
    async restore(streams, target, facts, context, { force }): Promise<RestoreSummary> {
      const expected = parseFacts(postgresFactsSchema, facts, 'postgres')
      const psql = await postgresTool('psql', undefined, context.env, '--target')
      const pgRestore = await postgresTool(
        'pg_restore',
        expected.pgDumpMajor,
        context.env,
        `restoring an archive of pg_dump ${expected.pgDump}`,
      )
      const plan = restorePlan(expected, target)
      // Every target is checked before anything is written: no half-restored server.
      const targets: RestoreTarget[] = []
      for (const { facts: database, into } of plan.databases) {
        const stream = streams.find((s) => s.name === database.stream)
        if (!stream) {
          throw new SourceError(`the snapshot has no stream for database ${database.name}`)
        }
        targets.push(await inspectTarget(psql, database, stream, into, context, force))
      }
      if (plan.globals) {
        const stream = streams.find((s) => s.name === plan.globals)
        if (stream) await restoreGlobals(psql, stream, target, context)
      }
      const descriptions: string[] = []
      for (const restoreTarget of targets) {
        descriptions.push(await restoreDatabase(psql, pgRestore, restoreTarget, context, force))
      }
      if (!plan.globals && expected.globals) {
        context.reporter.info(
          'roles and tablespaces (globals) were not restored: give a server URL without a database to restore them with every database',
        )
      }
      return { description: descriptions.join('; ') }
    },

    async drop(target, context): Promise<void> {
      const psql = await postgresTool('psql', undefined, context.env, '--target')
      const maintenance = target.withDatabase('postgres')
      const where = `database ${target.database} on ${target.host}`
      const serverMajor = await withSession(psql, maintenance, context, where, async (session) =>
        Math.floor(
          Number(await session.json<string>("SELECT current_setting('server_version_num')")) /
            10_000,
        ),
      )
      await dropDatabase(psql, maintenance, target.database ?? '', serverMajor, context, where)
    },
  },
}

async function serverInfo(
  psql: InstalledTool,
  url: DatabaseUrl,
  context: SourceContext,
  where: string,
): Promise<{ version: string; major: number }> {
  return withSession(psql, url, context, where, async (session) => {
    const number = Number(
      await session.json<string>("SELECT current_setting('server_version_num')"),
    )
    const version = await session.json<string>("SELECT current_setting('server_version')")
    return { version: version.split(' ')[0] ?? version, major: Math.floor(number / 10_000) }
  })
}

async function databaseNames(
  config: PostgresConfig,
  url: DatabaseUrl,
  psql: InstalledTool,
  context: SourceContext,
  where: string,
): Promise<string[]> {
  if (Array.isArray(config.databases)) return config.databases
  if (config.databases === 'all') {
    return withSession(psql, url, context, where, (session) =>
      session.json<string[]>(
        "SELECT coalesce(jsonb_agg(datname ORDER BY datname), '[]') FROM pg_database WHERE NOT datistemplate AND datallowconn",
      ),
    )
  }
  if (url.database) return [url.database]
  return withSession(psql, url, context, where, (session) =>
    session.json<string[]>('SELECT jsonb_build_array(current_database())'),
  )
}

/**
 * One database: a read-only repeatable-read transaction exports its snapshot, pg_dump dumps
 * that snapshot, and the same transaction counts the rows meanwhile.
 */
async function* dumpDatabase(
  psql: InstalledTool,
  pgDump: InstalledTool,
  url: DatabaseUrl,
  context: SourceContext,
  where: string,
  record: (facts: DatabaseFacts) => void,
): AsyncGenerator<Buffer> {
  const session = openSession(psql, url, context, where)
  try {
    await session.execute('BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY')
    const snapshot = await session.json<string>('SELECT pg_export_snapshot()')
    const encoding = await session.json<string>(
      'SELECT pg_encoding_to_char(encoding) FROM pg_database WHERE datname = current_database()',
    )
    const counting = countRows(session, await session.json<Array<[string, string]>>(TABLES_SQL))
    counting.catch(() => undefined) // awaited below; a failing dump must not leave it unhandled
    yield* toolOutput(
      command(pgDump, url, context, `pg_dump of ${where}`, [
        '--format=custom',
        '--compress=0',
        `--snapshot=${snapshot}`,
      ]),
    )
    const { tables, largeObjects } = await counting
    record({
      name: url.database ?? '',
      stream: databaseStream(url.database ?? ''),
      encoding,
      tables,
      largeObjects,
    })
  } finally {
    await session.close()
  }
}

async function countRows(
  session: PsqlSession,
  tables: Array<[string, string]>,
): Promise<{ tables: TableFacts[]; largeObjects: number }> {
  const counted: TableFacts[] = []
  for (let start = 0; start < tables.length; start += COUNT_BATCH) {
    const batch = tables.slice(start, start + COUNT_BATCH)
    const values = batch
      .map(
        ([schema, name], i) =>
          `(${i}, (SELECT count(*) FROM ONLY ${sqlIdentifier(schema)}.${sqlIdentifier(name)}))`,
      )
      .join(', ')
    const counts = await session.json<number[]>(
      `SELECT jsonb_agg(n ORDER BY i) FROM (VALUES ${values}) AS v(i, n)`,
    )
    batch.forEach(([schema, name], i) => {
      counted.push({ schema, name, rows: Number(counts[i]) })
    })
  }
  const largeObjects = Number(
    await session.json<number>('SELECT count(*) FROM pg_largeobject_metadata'),
  )
  return { tables: counted, largeObjects }
}

/**
 * Roles and tablespaces. Small, so held whole: a managed server (RDS, Cloud SQL) refuses to
 * read role passwords, and the dump is then taken again without them, which needs the start.
 */
async function* dumpGlobals(
  pgDumpAll: InstalledTool,
  url: DatabaseUrl,
  context: SourceContext,
  where: string,
): AsyncGenerator<Buffer> {
  const run = (extra: string[]) =>
    runTool(
      command(pgDumpAll, url, context, `pg_dumpall --globals-only of ${where}`, [
        '--globals-only',
        ...extra,
      ]),
    )
  try {
    yield Buffer.from((await run([])).stdout)
  } catch (error) {
    if (
      !(
        error instanceof SourceError &&
        /permission denied for (table|relation) pg_authid/.test(error.message)
      )
    ) {
      throw error
    }
    context.reporter.warn(
      `${where}: the server does not let this user read role passwords; roles are backed up without them`,
    )
    yield Buffer.from((await run(['--no-role-passwords'])).stdout)
  }
}

interface RestorePlan {
  globals: string | undefined
  databases: Array<{ facts: DatabaseFacts; into: DatabaseUrl }>
}

/**
 * Where each database goes. A URL with a database restores the source's one database into
 * it; a URL without one restores every database under its own name, roles first.
 */
function restorePlan(facts: PostgresFacts, target: DatabaseUrl): RestorePlan {
  if (target.database) {
    const [only] = facts.databases
    if (!only || facts.databases.length > 1) {
      throw new ConfigError(
        `the source holds ${facts.databases.length} databases (${facts.databases.map((d) => d.name).join(', ')}); --target names one`,
        'give a server URL without a database (postgres://USER@HOST:PORT/) to restore each under its own name',
      )
    }
    return { globals: undefined, databases: [{ facts: only, into: target }] }
  }
  return {
    globals: facts.globals,
    databases: facts.databases.map((d) => ({ facts: d, into: target.withDatabase(d.name) })),
  }
}

interface RestoreTarget {
  facts: DatabaseFacts
  stream: SourceStream
  url: DatabaseUrl
  name: string
  /** "database app on db.example.com:5432", for messages. */
  where: string
  exists: boolean
  serverMajor: number
}

/** Whether the target database exists, and a refusal when it holds anything without `force`. */
async function inspectTarget(
  psql: InstalledTool,
  facts: DatabaseFacts,
  stream: SourceStream,
  url: DatabaseUrl,
  context: SourceContext,
  force: boolean,
): Promise<RestoreTarget> {
  const name = url.database ?? facts.name
  const where = `database ${name} on ${url.host}${url.port ? `:${url.port}` : ''}`
  const { exists, serverMajor } = await withSession(
    psql,
    url.withDatabase('postgres'),
    context,
    where,
    async (session) => ({
      exists: await session.json<boolean>(
        `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = ${sqlLiteral(name)})`,
      ),
      serverMajor: Math.floor(
        Number(await session.json<string>("SELECT current_setting('server_version_num')")) / 10_000,
      ),
    }),
  )
  if (exists) {
    const objects = await withSession(psql, url, context, where, (session) =>
      session.json<number>(USER_OBJECTS_SQL),
    )
    if (objects > 0 && !force) {
      throw new RefusedError(
        `restore target ${where} is not empty (${objects} objects)`,
        'restore into a new database (kluis creates it), or pass --force to restore over it',
      )
    }
  }
  return { facts, stream, url, name, where, exists, serverMajor }
}

/**
 * One archive into one database, created when missing. pg_restore runs as one transaction, so
 * a failure leaves the database as it was; one kluis created is dropped again. Row counts are
 * then compared with the backup's.
 */
async function restoreDatabase(
  psql: InstalledTool,
  pgRestore: InstalledTool,
  { facts, stream, url: target, name, where, exists, serverMajor }: RestoreTarget,
  context: SourceContext,
  force: boolean,
): Promise<string> {
  const maintenance = target.withDatabase('postgres')
  if (!exists) {
    await withSession(psql, maintenance, context, where, (session) =>
      session.execute(
        `CREATE DATABASE ${sqlIdentifier(name)} TEMPLATE template0 ENCODING ${sqlLiteral(facts.encoding)}`,
      ),
    )
  }
  try {
    await feedTool(
      command(
        pgRestore,
        target,
        context,
        `pg_restore into ${where}`,
        ['--single-transaction', '--exit-on-error', ...(force ? ['--clean', '--if-exists'] : [])],
        {
          hint:
            'nothing was changed (pg_restore runs as one transaction; a database kluis created is ' +
            'dropped again); a missing role is created by restoring a source with globals: true ' +
            'first, or with CREATE ROLE',
        },
      ),
      stream.data,
    )
  } catch (error) {
    if (!exists) {
      await dropDatabase(psql, maintenance, name, serverMajor, context, where).catch((dropError) =>
        context.reporter.warn(
          `could not drop ${where} after the failed restore: ${(dropError as Error).message}`,
        ),
      )
    }
    throw error
  }
  const actual = await withSession(psql, target, context, where, async (session) =>
    countRows(
      session,
      facts.tables.map((t) => [t.schema, t.name]),
    ),
  )
  actual.tables.forEach((table, i) => {
    const recorded = facts.tables[i]?.rows
    if (table.rows !== recorded) {
      throw new IntegrityError(
        where,
        `table ${table.schema}.${table.name} has ${table.rows} rows after restore, the backup recorded ${recorded}`,
      )
    }
  })
  if (actual.largeObjects < facts.largeObjects) {
    throw new IntegrityError(
      where,
      `has ${actual.largeObjects} large objects after restore, the backup recorded ${facts.largeObjects}`,
    )
  }
  const objects = [plural(facts.tables.length, 'table')]
  if (facts.largeObjects) objects.push(plural(facts.largeObjects, 'large object'))
  return `${where} (${objects.join(', ')}, row counts match)`
}

/** Anything a user made in a database: relations, routines, types, schemas, extensions, large objects. */
const USER_OBJECTS_SQL = `SELECT
  (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE ${USER_SCHEMA})
  + (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE ${USER_SCHEMA})
  + (SELECT count(*) FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE ${USER_SCHEMA} AND t.typtype IN ('e', 'd', 'r', 'm'))
  + (SELECT count(*) FROM pg_namespace n WHERE ${USER_SCHEMA} AND n.nspname <> 'public')
  + (SELECT count(*) FROM pg_extension WHERE extname <> 'plpgsql')
  + (SELECT count(*) FROM pg_largeobject_metadata)`

/** Drops a database if it exists; `maintenance` is another database on the same server. */
async function dropDatabase(
  psql: InstalledTool,
  maintenance: DatabaseUrl,
  name: string,
  serverMajor: number,
  context: SourceContext,
  where: string,
): Promise<void> {
  await withSession(psql, maintenance, context, where, (session) =>
    // WITH (FORCE) (PostgreSQL 13+) ends a killed pg_restore's connection if it lingers.
    session.execute(
      `DROP DATABASE IF EXISTS ${sqlIdentifier(name)}${serverMajor >= 13 ? ' WITH (FORCE)' : ''}`,
    ),
  )
}

/**
 * Roles and tablespaces through psql. A role that already exists is expected (at least the
 * one restoring); any other error fails the restore.
 */
async function restoreGlobals(
  psql: InstalledTool,
  stream: SourceStream,
  target: DatabaseUrl,
  context: SourceContext,
): Promise<void> {
  const where = `roles and tablespaces on ${target.host}`
  const server = target.withDatabase('postgres')
  const { stderr } = await feedTool(
    // Its stderr is read below: "already exists" errors are expected, not warnings.
    command(psql, server, context, `psql restoring ${where}`, ['-X', '-q', '--file=-'], {
      warn: undefined,
    }),
    stream.data,
  )
  const errors = stderr
    .split('\n')
    .filter((line) => /ERROR:/.test(line) && !/already exists/.test(line))
  if (errors.length > 0) {
    throw new SourceError(
      `restoring ${where} failed:\n${errors
        .slice(-10)
        .map((line) => `  ${line}`)
        .join('\n')}`,
    )
  }
}

function command(
  tool: InstalledTool,
  url: DatabaseUrl,
  context: SourceContext,
  label: string,
  args: string[],
  overrides: Partial<ToolCommand> = {},
): ToolCommand {
  return {
    path: tool.path,
    args: [...args, '--no-password', `--dbname=${url.connection.href}`],
    env: toolEnvironment(context.env, {
      PGPASSWORD: url.password ?? context.env.PGPASSWORD,
      PGCONNECT_TIMEOUT: context.env.PGCONNECT_TIMEOUT ?? '30',
      PGAPPNAME: 'kluis',
    }),
    label,
    redact: url.redact,
    hint: CONNECTION_HINT,
    warn: (line) => context.reporter.warn(`${label}: ${line}`),
    ...overrides,
  }
}

function openSession(
  psql: InstalledTool,
  url: DatabaseUrl,
  context: SourceContext,
  where: string,
): PsqlSession {
  const session = new PsqlSession(command(psql, url, context, where, PSQL_SCRIPT_OPTIONS))
  // sqlLiteral() relies on it; a failure here fails the first query too, with psql's message.
  session.execute('SET standard_conforming_strings = on').catch(() => undefined)
  return session
}

async function withSession<T>(
  psql: InstalledTool,
  url: DatabaseUrl,
  context: SourceContext,
  where: string,
  use: (session: PsqlSession) => Promise<T>,
): Promise<T> {
  const session = openSession(psql, url, context, where)
  try {
    return await use(session)
  } finally {
    await session.close()
  }
}
