import { writeFile } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { ConfigError, SourceError } from '../../core/errors.js'
import { type TemporaryDirectory, temporaryDirectory } from '../../core/interrupt.js'
import type { SourceContext } from '../source.js'
import type { DatabaseUrl } from './database-url.js'
import { type InstalledTool, installedTools, type ToolSearch } from './tool-finder.js'
import { CONNECTION_HINT, runTool, type ToolCommand, toolEnvironment } from './tool-process.js'

/** Which family a server or a tool belongs to: their dumps and clients differ in details. */
export type MysqlFlavor = 'mariadb' | 'mysql'

export const MYSQL_BIN_VARIABLE = 'KLUIS_MYSQL_BIN'

const usualDirectories = [
  '/usr/local/mysql/bin',
  '/opt/homebrew/opt/mysql-client/bin',
  '/opt/homebrew/opt/mariadb/bin',
  '/usr/local/opt/mysql-client/bin',
]
/**
 * The server version a tool was built for: "Ver 10.19 Distrib 10.11.18-MariaDB," (MariaDB ≤ 10),
 * "from 11.4.2-MariaDB, client 10.19" (MariaDB 11), "Ver 8.0.36 for Linux" (MySQL 8),
 * "Ver 10.13 Distrib 5.7.44," (MySQL 5.7).
 */
const versionPattern = /(?:Distrib|Ver|from) (\d+\.\d+\.\d+[\w.~+-]*)/

const searches = {
  dump: { names: ['mariadb-dump', 'mysqldump'] },
  client: { names: ['mariadb', 'mysql'] },
} satisfies Record<string, Pick<ToolSearch, 'names'>>
export type MysqlToolKind = keyof typeof searches

export function flavorOf(version: string): MysqlFlavor {
  return /mariadb/i.test(version) ? 'mariadb' : 'mysql'
}

export const familyName = { mariadb: 'MariaDB', mysql: 'MySQL' } as const
const debianPackage = { mariadb: 'mariadb-client', mysql: 'default-mysql-client' } as const

/**
 * The installed copies of each kind of tool asked for, best first. When a kind is missing,
 * one error names everything that is missing and what to install.
 */
export async function mysqlTools<K extends MysqlToolKind>(
  kinds: K[],
  env: NodeJS.ProcessEnv,
  where: string,
): Promise<Record<K, InstalledTool[]>> {
  const found = {} as Record<K, InstalledTool[]>
  const missing: string[] = []
  for (const kind of kinds) {
    found[kind] = await installedTools(
      {
        ...searches[kind],
        usualDirectories,
        overrideVariable: MYSQL_BIN_VARIABLE,
        versionPattern,
      },
      env,
    )
    if (found[kind].length === 0) missing.push(searches[kind].names.join(' or '))
  }
  if (missing.length > 0) {
    const override = env[MYSQL_BIN_VARIABLE]
    throw new SourceError(
      `${where}: the MySQL/MariaDB client tools are not installed: found no ${missing.join(', and no ')} ${
        override ? `in ${MYSQL_BIN_VARIABLE} (${override})` : 'on PATH or in the usual folders'
      }`,
      `install them (Debian/Ubuntu: apt-get install mariadb-client for a MariaDB server, default-mysql-client for MySQL; macOS: brew install mysql-client), or set ${MYSQL_BIN_VARIABLE} to the folder that holds them`,
    )
  }
  return found
}

/**
 * The tool of the wanted family, or the other family's with a warning: a MySQL mysqldump
 * against MariaDB (or the reverse) mostly works, but not always. `why` says what it is for.
 */
export function pickTool(
  tools: InstalledTool[],
  want: MysqlFlavor,
  context: SourceContext,
  why: string,
  caveat = '',
): InstalledTool {
  const same = tools.find((tool) => flavorOf(tool.version) === want)
  if (same) return same
  const [other] = tools
  if (!other) throw new Error('pickTool called without tools') // mysqlTools guarantees one
  context.reporter.warn(
    `${why}: no ${familyName[want]} tool is installed, using ${familyName[flavorOf(other.version)]}'s ${basename(other.path)} ${other.version} instead${caveat}; install ${debianPackage[want]} for the matching one`,
  )
  return other
}

/**
 * A connection to one server for the tools: the credentials in a 0600 option file in a
 * temporary folder, never in argv or the environment. Every tool command starts with
 * `--defaults-extra-file=…` (it must be the first argument); user option files are not read.
 */
export class MysqlSession {
  private constructor(
    readonly url: DatabaseUrl,
    private readonly directory: TemporaryDirectory,
    readonly optionFile: string,
    readonly env: NodeJS.ProcessEnv,
  ) {}

  static async open(
    url: DatabaseUrl,
    context: SourceContext,
    where: string,
  ): Promise<MysqlSession> {
    const text = optionFileText(url, where)
    const directory = temporaryDirectory(join(context.temporaryDirectory, 'kluis-mysql-'))
    try {
      const optionFile = join(directory.path, 'client.cnf')
      await writeFile(optionFile, text, { mode: 0o600, flag: 'wx' })
      // The URL alone decides where to connect and as whom. The option file is read after the
      // global ones (kept: site-wide TLS settings), but the user's ~/.my.cnf (and MySQL's
      // ~/.mylogin.cnf) would be read after it and win, even for the host: HOME points to this
      // private folder instead. MYSQL_PWD would be used where the URL has no password.
      const env = toolEnvironment(context.env, {
        HOME: directory.path,
        MYSQL_PWD: undefined,
        MYSQL_TEST_LOGIN_FILE: undefined,
      })
      return new MysqlSession(url, directory, optionFile, env)
    } catch (error) {
      await directory.remove()
      throw error
    }
  }

  /** A command for `tool`: the option file first, then `args`. */
  command(tool: InstalledTool, args: string[], label: string): ToolCommand {
    return {
      path: tool.path,
      args: [`--defaults-extra-file=${this.optionFile}`, ...args],
      env: this.env,
      label,
      redact: this.url.redact,
      hint: CONNECTION_HINT,
    }
  }

  /**
   * Runs SQL through the client (on stdin, never argv) and returns its rows as tab-separated
   * fields. `database` is the default database, if any. Only for values without tabs or
   * newlines (numbers, hex); the client escapes those.
   */
  async query(
    client: InstalledTool,
    sql: string,
    label: string,
    database?: string,
  ): Promise<string[][]> {
    const args = ['--batch', '--skip-column-names', '--default-character-set=utf8mb4']
    if (database !== undefined) args.push(`--database=${database}`)
    const { stdout } = await runTool(this.command(client, args, label), sql)
    return stdout
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => line.split('\t'))
  }

  close(): Promise<void> {
    return this.directory.remove()
  }
}

/**
 * The `[client]` group for the tools: user, password, host, port from the URL, and each query
 * parameter as an option (`?ssl-ca=/path`, `?socket=/run/mysqld/mysqld.sock`).
 */
export function optionFileText(url: DatabaseUrl, where: string): string {
  const lines = ['[client]']
  const add = (key: string, value: string | undefined) => {
    if (value === undefined) return
    lines.push(value === '' ? key : `${key}=${optionValue(value, where)}`)
  }
  add('user', url.user)
  add('password', url.password)
  // A bracketed IPv6 address in a URL is a bare one for the tools.
  add('host', url.host.replace(/^\[(.*)\]$/, '$1'))
  if (url.port !== undefined) add('port', String(url.port))
  const parameters = [...url.connection.searchParams]
  const keys = new Set(parameters.map(([key]) => key.toLowerCase().replaceAll('_', '-')))
  // The tools take "localhost" as the local socket even with a port; a URL with a port means TCP.
  if (url.port !== undefined && !keys.has('protocol') && !keys.has('socket')) {
    add('protocol', 'TCP')
  }
  for (const [key, value] of parameters) {
    if (!/^[a-z][a-z0-9_-]*$/i.test(key)) {
      throw new ConfigError(
        `${where}: the URL parameter '${key}' is not a MySQL client option name`,
        'URL parameters become client options (e.g. ?ssl-ca=/path/ca.pem or ?socket=/run/mysqld/mysqld.sock)',
      )
    }
    add(key, value)
  }
  return `${lines.join('\n')}\n`
}

/**
 * A value for a MySQL/MariaDB option file: in double quotes, so that `#`, spaces and quotes
 * survive, with the escapes both families' option parsers undo.
 */
export function optionValue(value: string, where: string): string {
  if (value.includes('\0')) {
    throw new ConfigError(`${where}: a value in the URL contains a NUL character`)
  }
  const escaped = value.replace(/[\\"\n\r\t\b]/g, (c) => optionEscapes[c] ?? c)
  return `"${escaped}"`
}

const optionEscapes: Record<string, string> = {
  '\\': '\\\\',
  '"': '\\"',
  '\n': '\\n',
  '\r': '\\r',
  '\t': '\\t',
  '\b': '\\b',
}

/** A quoted identifier (database or table name): backquotes doubled. */
export function sqlIdentifier(name: string): string {
  return `\`${name.replaceAll('`', '``')}\``
}

/** A string literal that means the same whatever the sql_mode (no quotes, no backslashes). */
export function sqlText(text: string): string {
  return `CONVERT(X'${Buffer.from(text, 'utf8').toString('hex')}' USING utf8mb4)`
}
