import type { SourceConfig } from '../config/config.js'
import { filesDriver } from './files.js'
import { gitConfigDriver } from './git-config.js'
import { mysqlDriver } from './mysql.js'
import { postgresDriver } from './postgres.js'
import type { SourceDriver } from './source.js'
import { sqliteDriver } from './sqlite.js'

const drivers: Record<SourceConfig['type'], SourceDriver<never>> = {
  sqlite: sqliteDriver,
  files: filesDriver,
  'git-config': gitConfigDriver,
  postgres: postgresDriver,
  mysql: mysqlDriver,
}

/** The driver of a stored source type, or undefined for a type this kluis does not know. */
export function driverForStored(type: string): SourceDriver | undefined {
  return Object.hasOwn(drivers, type) ? drivers[type as SourceConfig['type']] : undefined
}

/** The driver of a source type; later source kinds register here. */
export function driverFor<C extends SourceConfig>(type: C['type']): SourceDriver<C> {
  return drivers[type] as unknown as SourceDriver<C>
}
