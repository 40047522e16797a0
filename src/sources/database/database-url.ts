import { ConfigError } from '../../core/errors.js'
import { redactor } from '../../core/redact.js'

/**
 * A database server URL split into what may be shown and what must stay secret. The password
 * never reaches a child's argv or a log line: it goes to the child's environment or a 0600 file.
 */
export interface DatabaseUrl {
  /** The URL without its password, for child processes (libpq parses it itself). */
  connection: URL
  /** The URL with the password replaced by ***, for messages. */
  display: string
  /** The password, percent-decoded; undefined when the URL has none. */
  password: string | undefined
  user: string | undefined
  host: string
  port: number | undefined
  /** The database named in the path, percent-decoded; undefined when the path is empty. */
  database: string | undefined
  /** Removes the password (in every form it may take) from text that came from a tool. */
  redact(text: string): string
  /** The same server with another database in the path. */
  withDatabase(name: string): DatabaseUrl
}

export type DatabaseScheme = 'postgres' | 'mysql'

const schemes: Record<string, DatabaseScheme> = {
  'postgres:': 'postgres',
  'postgresql:': 'postgres',
  'mysql:': 'mysql',
  'mariadb:': 'mysql',
}

/** The kind of server a URL names, or undefined when it is not a database URL (a folder). */
export function databaseScheme(text: string): DatabaseScheme | undefined {
  const match = /^([a-z][a-z0-9+.-]*:)\/\//i.exec(text)
  return match ? schemes[match[1]?.toLowerCase() ?? ''] : undefined
}

/**
 * `where` names the URL's origin in errors ("source 'app'", "--target"); the URL itself is never
 * quoted, since it may hold a password.
 */
export function parseDatabaseUrl(
  text: string,
  where: string,
  expected?: DatabaseScheme,
): DatabaseUrl {
  const scheme = databaseScheme(text)
  const form =
    expected === 'mysql'
      ? 'mysql://USER:PASSWORD@HOST:PORT/DATABASE'
      : expected === 'postgres'
        ? 'postgres://USER:PASSWORD@HOST:PORT/DATABASE'
        : 'postgres://USER:PASSWORD@HOST:PORT/DATABASE or mysql://…'
  let url: URL
  try {
    if (!scheme || (expected && scheme !== expected)) throw new Error('not the expected scheme')
    url = new URL(text)
  } catch {
    throw new ConfigError(
      `${where}: not a valid ${expected ?? 'database'} URL`,
      `write ${form} (percent-encode special characters in the password)`,
    )
  }
  // libpq also takes the password as a query parameter; it is moved out of the URL the same way.
  const queryPassword = url.searchParams.get('password') ?? undefined
  url.searchParams.delete('password')
  const rawPassword = url.password || undefined
  let password: string | undefined
  try {
    password = rawPassword === undefined ? queryPassword : decodeURIComponent(rawPassword)
  } catch {
    throw new ConfigError(
      `${where}: the password in the URL has a malformed percent-encoding`,
      'percent-encode special characters in the password (% as %25, @ as %40, / as %2F)',
    )
  }
  url.password = ''
  const redact = redactor([rawPassword, password].filter((s): s is string => !!s))
  const shown = new URL(url.href)
  if (password !== undefined && shown.username) shown.password = '***'
  const path = url.pathname.replace(/^\//, '')
  return {
    connection: url,
    display: shown.href,
    password,
    user: url.username ? decodeURIComponent(url.username) : undefined,
    host: decodeURIComponent(url.hostname) || 'localhost',
    port: url.port ? Number(url.port) : undefined,
    database: path ? decodeURIComponent(path) : undefined,
    redact,
    withDatabase(name) {
      const other = new URL(text)
      other.pathname = `/${encodeURIComponent(name)}`
      return parseDatabaseUrl(other.href, where, scheme)
    },
  }
}
