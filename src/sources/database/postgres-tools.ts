import { dirname, join } from 'node:path'
import { SourceError } from '../../core/errors.js'
import { type InstalledTool, installedTools } from './tool-finder.js'

/** Where PostgreSQL client tools live besides PATH: Debian/Ubuntu, RHEL, Homebrew, Postgres.app. */
const USUAL_DIRECTORIES = [
  '/usr/lib/postgresql/*/bin',
  '/usr/pgsql-*/bin',
  '/opt/homebrew/opt/postgresql@*/bin',
  '/usr/local/opt/postgresql@*/bin',
  '/Applications/Postgres.app/Contents/Versions/*/bin',
]

export const POSTGRES_BIN_VARIABLE = 'KLUIS_POSTGRES_BIN'

export type PostgresToolName = 'psql' | 'pg_dump' | 'pg_dumpall' | 'pg_restore'

/**
 * A PostgreSQL client tool of at least `minimumMajor` (the server's, or for pg_restore the
 * pg_dump's that wrote the archive). The same major is preferred, else the oldest newer one:
 * an archive from a newer pg_dump needs an equally new pg_restore, so newer than needed only
 * makes the restore harder. Without a minimum, the newest.
 */
export async function postgresTool(
  name: PostgresToolName,
  minimumMajor: number | undefined,
  env: NodeJS.ProcessEnv,
  why: string,
): Promise<InstalledTool> {
  const found = await installedTools(
    {
      names: [name],
      usualDirectories: USUAL_DIRECTORIES,
      overrideVariable: POSTGRES_BIN_VARIABLE,
      versionPattern: /\(PostgreSQL\) (\d+(?:\.\d+)*)/,
    },
    env,
  )
  if (found.length === 0) {
    throw new SourceError(`${name} was not found (${why} needs it)`, installHint(minimumMajor))
  }
  if (minimumMajor === undefined) return newest(found)
  const usable = found.filter((tool) => tool.major >= minimumMajor)
  const exact = usable.find((tool) => tool.major === minimumMajor)
  if (exact) return exact
  if (usable.length > 0) return usable.reduce((a, b) => (b.major < a.major ? b : a))
  const best = newest(found)
  throw new SourceError(
    `${why} needs ${name} ${minimumMajor} or newer; the newest found is ${best.version} (${best.path})`,
    installHint(minimumMajor),
  )
}

function installHint(major: number | undefined): string {
  const version = major === undefined ? '' : `${major}`
  return (
    `install the PostgreSQL ${version ? `${version} ` : ''}client tools (Debian/Ubuntu: ` +
    `apt-get install postgresql-client${version ? `-${version}` : ''}, from apt.postgresql.org ` +
    `if the release lacks it; macOS: brew install postgresql${version ? `@${version}` : ''}), ` +
    `or set ${POSTGRES_BIN_VARIABLE} to the folder that holds them`
  )
}

/** A tool from the same installation as `sibling` (pg_dumpall beside the chosen pg_dump). */
export function besideTool(sibling: InstalledTool, name: PostgresToolName): InstalledTool {
  return { ...sibling, path: join(dirname(sibling.path), name) }
}

function newest(tools: InstalledTool[]): InstalledTool {
  return tools.reduce((a, b) => (b.major > a.major ? b : a))
}
