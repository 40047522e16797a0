import { createWriteStream } from 'node:fs'
import { basename, join } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { z } from 'zod'
import type { SourceConfig } from '../config/config.js'
import { ConfigError, IntegrityError, RefusedError, SourceError } from '../core/errors.js'
import { plural } from '../core/format.js'
import { type DatabaseUrl, parseDatabaseUrl } from './database/database-url.js'
import { MysqlDumpScanner, type MysqlDumpSummary } from './database/mysql-dump-scanner.js'
import { compareCounts, countRows, dropDatabase, targetState } from './database/mysql-restore.js'
import {
  familyName,
  flavorOf,
  type MysqlFlavor,
  MysqlSession,
  mysqlTools,
  pickTool,
  sqlIdentifier,
} from './database/mysql-tools.js'
import type { InstalledTool } from './database/tool-finder.js'
import { feedTool, toolOutput } from './database/tool-process.js'
import {
  onlyStream,
  parseFacts,
  type RestoreSummary,
  type SourceDriver,
  type SourceReading,
  safeFileName,
} from './source.js'

type MysqlConfig = Extract<SourceConfig, { type: 'mysql' }>

const mysqlFactsSchema = z.object({
  engine: z.literal('mysql'),
  flavor: z.enum(['mariadb', 'mysql']),
  /** SELECT VERSION() of the server, e.g. "10.11.18-MariaDB-0+deb12u1". */
  server: z.string(),
  /** The dump tool and the version it reports, e.g. "mariadb-dump 10.11.18-MariaDB". */
  dumpTool: z.string(),
  database: z.string(),
  /** Rows per table, counted in the dump itself as it streamed past: exactly what it holds. */
  tables: z.record(z.string(), z.number().int().nonnegative()),
  rowCounts: z.literal('from-dump'),
})
export type MysqlFacts = z.infer<typeof mysqlFactsSchema>

const STREAM = 'dump'
/** Rows larger than the tools' default packet (16–24 MiB) must not stop a dump or a restore. */
const MAX_PACKET = '--max-allowed-packet=1073741824'

/**
 * MySQL and MariaDB through their own tools: `mariadb-dump`/`mysqldump` in one consistent
 * InnoDB transaction, streamed. The rows per table are counted from the dump stream as it
 * passes, so the facts describe exactly the bytes stored, however busy the server was.
 */
export const mysqlDriver: SourceDriver<MysqlConfig> = {
  async read(config, context): Promise<SourceReading> {
    const where = `source '${config.name}'`
    const url = parseDatabaseUrl(config.url, where, 'mysql')
    const database = url.database
    if (!database) {
      throw new ConfigError(
        `${where}: the URL ${url.display} names no database`,
        'put the database in the URL path: mysql://USER:PASSWORD@HOST:PORT/DATABASE',
      )
    }
    const tools = await mysqlTools(['dump', 'client'], context.env, where)
    const session = await MysqlSession.open(url, context, where)
    try {
      const [client] = tools.client
      if (!client) throw new Error('mysqlTools returned no client')
      const [[server = ''] = []] = await session.query(
        client,
        'SELECT VERSION();\n',
        `${where}: ${basename(client.path)} asking ${url.host} for its version`,
      )
      const flavor = flavorOf(server)
      const dump = pickTool(
        tools.dump,
        flavor,
        context,
        `${where}: dumping from ${familyName[flavor]} ${server}`,
      )
      const dumpTool = `${basename(dump.path)} ${dump.version}`
      context.reporter.debug(`${where}: server ${server}, dumping with ${dump.path} (${dumpTool})`)
      const command = session.command(
        dump,
        dumpArguments(dump, flavor, database),
        `${where}: ${basename(dump.path)} of database ${database}`,
      )
      let summary: MysqlDumpSummary | undefined
      async function* data(): AsyncGenerator<Buffer> {
        const scanner = new MysqlDumpScanner()
        for await (const chunk of toolOutput(command)) {
          scanner.push(chunk)
          yield chunk
        }
        const scanned = scanner.finish()
        if (!scanned.completed) {
          throw new SourceError(
            `${where}: the dump of database ${database} ended early: ${basename(dump.path)} exited successfully, but its output stops after ${scanned.bytes} bytes without the closing "-- Dump completed" line`,
            'the dump is incomplete and no snapshot was written; check the server log (max_allowed_packet, net_write_timeout, a killed connection) and run the backup again',
          )
        }
        summary = scanned
      }
      return {
        streams: [{ name: STREAM, data: data() }],
        facts(): MysqlFacts {
          if (!summary) throw new Error(`${where}: facts asked before the dump was read`)
          return {
            engine: 'mysql',
            flavor,
            server,
            dumpTool,
            database,
            tables: Object.fromEntries(summary.tables),
            rowCounts: 'from-dump',
          }
        },
        close: () => session.close(),
      }
    } catch (error) {
      await session.close()
      throw error
    }
  },

  /** Without a server: the dump as `<database>.sql`, checked to be whole, to load by hand. */
  async restore(streams, directory, facts): Promise<RestoreSummary> {
    const expected = parseFacts(mysqlFactsSchema, facts, 'mysql')
    const stream = onlyStream(streams, 'mysql dump')
    const name = `${safeFileName(expected.database, 'database')}.sql`
    const scanner = new MysqlDumpScanner()
    async function* scanned(): AsyncGenerator<Buffer> {
      for await (const chunk of stream.data) {
        scanner.push(chunk)
        yield chunk
      }
    }
    await pipeline(scanned(), createWriteStream(join(directory, name), { flags: 'wx' }))
    const summary = scanner.finish()
    if (!summary.completed) {
      throw new IntegrityError(name, 'the dump does not end with "-- Dump completed"')
    }
    compareCounts(expected.tables, summary.tables, name, 'in the restored dump')
    const client = expected.flavor === 'mariadb' ? 'mariadb' : 'mysql'
    return {
      description: `${name} (${plural(Object.keys(expected.tables).length, 'table')}, row counts match; load it with: ${client} --default-character-set=utf8mb4 DATABASE < ${name})`,
    }
  },

  server: {
    scheme: 'mysql',
    async restore(streams, target, facts, context, { force }): Promise<RestoreSummary> {
      const expected = parseFacts(mysqlFactsSchema, facts, 'mysql')
      const stream = onlyStream(streams, 'mysql dump')
      const database = target.database
      if (!database) {
        throw new ConfigError(
          `--target ${target.display} names no database`,
          'put the database to restore into in the URL path (it is created when missing): mysql://USER:PASSWORD@HOST:PORT/DATABASE',
        )
      }
      const where = `database ${database} on ${serverName(target)}`
      const tools = await mysqlTools(['client'], context.env, `restore into ${where}`)
      // MariaDB's dumps start with a sandbox-mode line that MySQL's client rejects, and the
      // reverse holds for some of MySQL's: load a dump with the client of its own family.
      const client = pickTool(
        tools.client,
        expected.flavor,
        context,
        `restoring a dump made by ${expected.dumpTool}`,
        expected.flavor === 'mariadb'
          ? " (it may reject the dump's first line, MariaDB's sandbox mode)"
          : '',
      )
      const session = await MysqlSession.open(target, context, '--target')
      try {
        const state = await targetState(session, client, database, where)
        if (state.exists && state.objects.length > 0 && !force) {
          throw new RefusedError(
            `${where} is not empty (${state.objects.join(', ')})`,
            'restore into a new or empty database, or pass --force to restore over it (objects in the dump are replaced, others are kept)',
          )
        }
        if (!state.exists) {
          await session.query(
            client,
            `CREATE DATABASE ${sqlIdentifier(database)} CHARACTER SET utf8mb4;\n`,
            `creating ${where}`,
          )
        }
        try {
          await feedTool(
            session.command(
              client,
              [
                '--default-character-set=utf8mb4',
                MAX_PACKET,
                // MariaDB's client prints a failing statement whole: data in the log.
                ...(flavorOf(client.version) === 'mariadb' ? ['--skip-print-query-on-error'] : []),
                `--database=${database}`,
              ],
              `${basename(client.path)} restoring into ${where}`,
            ),
            stream.data,
          )
        } catch (error) {
          // Nothing half-restored is left behind in a database kluis made for the restore.
          if (!state.exists) await dropDatabase(session, client, database, where, context)
          else
            context.reporter.warn(
              `${where} existed before (--force) and may now be partly restored`,
            )
          throw error
        }
        const counted = await countRows(session, client, database, expected.tables, where)
        compareCounts(expected.tables, counted, where, 'after the restore')
        return {
          description: `${where} (${plural(Object.keys(expected.tables).length, 'table')}, row counts match)`,
        }
      } finally {
        await session.close()
      }
    },

    async drop(target, context): Promise<void> {
      const [client] = (await mysqlTools(['client'], context.env, '--target')).client
      if (!client) throw new Error('mysqlTools returned no client')
      const session = await MysqlSession.open(target.withDatabase(''), context, '--target')
      try {
        await session.query(
          client,
          `DROP DATABASE IF EXISTS ${sqlIdentifier(target.database ?? '')};\n`,
          `dropping database ${target.database} on ${serverName(target)}`,
        )
      } finally {
        await session.close()
      }
    },
  },
}

function dumpArguments(dump: InstalledTool, server: MysqlFlavor, database: string): string[] {
  const args = [
    '--single-transaction',
    '--routines',
    '--triggers',
    '--events',
    '--hex-blob',
    '--default-character-set=utf8mb4',
    '--skip-dump-date',
    '--no-tablespaces',
    '--quick',
    MAX_PACKET,
  ]
  if (flavorOf(dump.version) === 'mysql') {
    // MySQL's own mysqldump; untested here, as the test machine has only MariaDB's tools.
    // GTID statements would make the dump unloadable into a server with its own GTIDs.
    args.push('--set-gtid-purged=OFF')
    // mysqldump 8 reads column statistics, which MariaDB servers do not have.
    if (server === 'mariadb' && dump.major >= 8) args.push('--column-statistics=0')
  }
  args.push('--', database)
  return args
}

/** "127.0.0.1:3306", never with credentials. */
function serverName(url: DatabaseUrl): string {
  return `${url.host}:${url.port ?? 3306}`
}
