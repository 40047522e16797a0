import { basename } from 'node:path'
import { IntegrityError } from '../../core/errors.js'
import { plural } from '../../core/format.js'
import type { SourceContext } from '../source.js'
import { type MysqlSession, sqlIdentifier, sqlText } from './mysql-tools.js'
import type { InstalledTool } from './tool-finder.js'

/** Counting statements per client run: one run per table would make many tables slow. */
const COUNT_BATCH = 200

/** What a restore target holds, before kluis writes to it. */
export interface TargetState {
  exists: boolean
  /** What the database holds, e.g. "3 tables", "1 routine"; empty when nothing. */
  objects: string[]
}

export async function targetState(
  session: MysqlSession,
  client: InstalledTool,
  database: string,
  where: string,
): Promise<TargetState> {
  const name = sqlText(database)
  const [row = []] = await session.query(
    client,
    `SELECT
      (SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ${name}),
      (SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ${name} AND TABLE_TYPE <> 'VIEW'),
      (SELECT COUNT(*) FROM information_schema.VIEWS WHERE TABLE_SCHEMA = ${name}),
      (SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ${name}),
      (SELECT COUNT(*) FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ${name}),
      (SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ${name});\n`,
    `${basename(client.path)} looking at ${where}`,
  )
  const [exists, tables, views, routines, events, triggers] = row.map(Number)
  const objects = (
    [
      [tables, 'table'],
      [views, 'view'],
      [routines, 'routine'],
      [events, 'event'],
      [triggers, 'trigger'],
    ] as const
  )
    .filter(([count]) => (count ?? 0) > 0)
    .map(([count, noun]) => plural(count ?? 0, noun))
  return { exists: (exists ?? 0) > 0, objects }
}

export async function dropDatabase(
  session: MysqlSession,
  client: InstalledTool,
  database: string,
  where: string,
  context: SourceContext,
): Promise<void> {
  try {
    await session.query(
      client,
      `DROP DATABASE IF EXISTS ${sqlIdentifier(database)};\n`,
      `dropping the unfinished ${where}`,
    )
    context.reporter.info(
      `dropped the unfinished ${where}, which kluis had created for the restore`,
    )
  } catch (error) {
    context.reporter.warn(
      `the restore failed and ${where}, created for it, could not be dropped: ${(error as Error).message}`,
    )
  }
}

/** Row counts of the restored tables the backup recorded; a missing table is left out. */
export async function countRows(
  session: MysqlSession,
  client: InstalledTool,
  database: string,
  expected: Record<string, number>,
  where: string,
): Promise<Map<string, number>> {
  const label = `${basename(client.path)} counting rows in ${where}`
  // Names as hex: the client's batch output escapes tabs and newlines in names.
  const present = new Map<string, string>()
  const rows = await session.query(
    client,
    `SELECT HEX(TABLE_NAME) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ${sqlText(database)} AND TABLE_TYPE <> 'VIEW';\n`,
    label,
  )
  for (const [hex = ''] of rows) {
    const name = Buffer.from(hex, 'hex').toString('utf8')
    present.set(name, name)
    // With lower_case_table_names=1 the server stores names in lower case.
    if (!present.has(name.toLowerCase())) present.set(name.toLowerCase(), name)
  }
  const tables = Object.keys(expected)
    .map((table) => [table, present.get(table) ?? present.get(table.toLowerCase())] as const)
    .filter((pair): pair is readonly [string, string] => pair[1] !== undefined)
  const counts = new Map<string, number>()
  for (let start = 0; start < tables.length; start += COUNT_BATCH) {
    const batch = tables.slice(start, start + COUNT_BATCH)
    const sql = batch
      .map(
        ([, actual]) => `SELECT COUNT(*) FROM ${sqlIdentifier(database)}.${sqlIdentifier(actual)};`,
      )
      .join('\n')
    const result = await session.query(client, `${sql}\n`, label)
    for (const [i, [table]] of batch.entries()) counts.set(table, Number(result[i]?.[0]))
  }
  return counts
}

/** Every table the backup recorded has its recorded row count in `actual`, or IntegrityError. */
export function compareCounts(
  expected: Record<string, number>,
  actual: Map<string, number>,
  object: string,
  when: string,
): void {
  for (const [table, count] of Object.entries(expected)) {
    const found = actual.get(table)
    if (found === undefined) {
      throw new IntegrityError(
        object,
        `table ${table} is missing ${when}; the backup recorded ${count} rows`,
      )
    }
    if (found !== count) {
      throw new IntegrityError(
        object,
        `table ${table} has ${found} rows ${when}, the backup recorded ${count}`,
      )
    }
  }
}
