import type { SourceConfig } from '../config/config.js'
import { filesDriver } from './files.js'
import type { SourceDriver } from './source.js'
import { sqliteDriver } from './sqlite.js'

const drivers: Record<SourceConfig['type'], SourceDriver<never>> = {
  sqlite: sqliteDriver,
  files: filesDriver,
}

/** The driver of a source type; later source kinds register here. */
export function driverFor<C extends SourceConfig>(type: C['type']): SourceDriver<C> {
  return drivers[type] as unknown as SourceDriver<C>
}
