import { spawn, spawnSync } from 'node:child_process'
import { accessSync, constants, readdirSync, rmSync } from 'node:fs'
import { appendFile, chown, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { createServer, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { delimiter, dirname, join } from 'node:path'

/** A throwaway PostgreSQL server on 127.0.0.1, for integration tests. */
export interface PostgresServer {
  port: number
  /** Superuser name and password (password has URL-special characters, e.g. 'p@ss:w/rd%+ é'). */
  user: string
  password: string
  /** The temporary folder holding the data directory, socket and log; gone after stop(). */
  dir: string
  /** postgres://user:password@127.0.0.1:port/<database> with the password percent-encoded. */
  url(database?: string): string
  /** Runs SQL (several statements are fine) through psql as the superuser; returns stdout trimmed. */
  sql(database: string, sql: string): string
  /** Major version number of the running server, e.g. 15. */
  major: number
  /** Stops the server and removes its folder; safe to call twice. */
  stop(): Promise<void>
}

const superuser = 'postgres'
const superuserPassword = 'p@ss:w/rd%+ é'
const startAttempts = 5
/** psql output can be a whole dump; spawnSync's default 1 MiB would cut it off. */
const maxOutput = 512 * 1024 * 1024

/** Undefined when initdb/pg_ctl cannot be found; tests use this to decide skip vs fail. */
export function postgresBinDir(): string | undefined {
  // Debian installs each major version side by side and puts none of them on PATH.
  const versions = listDir('/usr/lib/postgresql')
    .filter((name) => /^\d+$/.test(name))
    .sort((a, b) => Number(b) - Number(a))
  const candidates = versions.map((version) => `/usr/lib/postgresql/${version}/bin`)
  const initdb = findOnPath('initdb')
  if (initdb) candidates.push(dirname(initdb))
  return candidates.find(
    (dir) => isExecutable(join(dir, 'initdb')) && isExecutable(join(dir, 'pg_ctl')),
  )
}

export async function startPostgres(): Promise<PostgresServer> {
  const binDir = postgresBinDir()
  if (!binDir) throw new Error('PostgreSQL is not installed: apt-get install postgresql')
  const psql = isExecutable(join(binDir, 'psql')) ? join(binDir, 'psql') : findOnPath('psql')
  if (!psql) throw new Error('psql is not installed: apt-get install postgresql-client')
  const account = serverAccount()
  const dir = await mkdtemp(join(tmpdir(), 'kluis-pg-'))
  const dataDir = join(dir, 'data')
  const pgCtl = join(binDir, 'pg_ctl')
  const disarmWatchdog = startWatchdog(pgCtl, dir, dataDir, account)
  const stopSync = () => {
    spawnSync(pgCtl, ['stop', '-D', dataDir, '-m', 'immediate', '-w', '-t', '10'], {
      cwd: dir,
      stdio: 'ignore',
      env: serverEnv(),
      ...account,
    })
    rmSync(dir, { recursive: true, force: true, maxRetries: 3 })
  }
  forgottenServers.set(dir, stopSync)
  try {
    if (account) await chown(dir, account.uid, account.gid)
    await initCluster(binDir, dir, dataDir, account)
    const port = await startOnFreePort(pgCtl, dir, dataDir, account)
    const sql = (database: string, text: string) => runPsql(psql, port, database, text)
    const major = Math.floor(Number(sql('postgres', 'SHOW server_version_num')) / 10000)
    let stopping: Promise<void> | undefined
    return {
      port,
      user: superuser,
      password: superuserPassword,
      dir,
      url: (database = 'postgres') =>
        `postgres://${encodeURIComponent(superuser)}:${encodeURIComponent(superuserPassword)}@127.0.0.1:${port}/${encodeURIComponent(database)}`,
      sql,
      major,
      stop: () => {
        stopping ??= stopServer(pgCtl, dir, dataDir, account).finally(disarmWatchdog)
        return stopping
      },
    }
  } catch (error) {
    forgottenServers.delete(dir)
    stopSync()
    disarmWatchdog()
    throw error
  }
}

type Account = { uid: number; gid: number } | undefined

/** initdb and postgres refuse to run as root, so as root they run as the `postgres` user. */
function serverAccount(): Account {
  if (process.getuid?.() !== 0) return undefined
  const id = (flag: string) => {
    const result = spawnSync('id', [flag, 'postgres'], { encoding: 'utf8' })
    if (result.status !== 0) {
      throw new Error('as root, PostgreSQL must run as the `postgres` user, which does not exist')
    }
    return Number(result.stdout.trim())
  }
  return { uid: id('-u'), gid: id('-g') }
}

async function initCluster(binDir: string, dir: string, dataDir: string, account: Account) {
  const passwordFile = join(dir, 'password')
  await writeFile(passwordFile, `${superuserPassword}\n`, { mode: 0o600 })
  if (account) await chown(passwordFile, account.uid, account.gid)
  const initdb = await run(
    join(binDir, 'initdb'),
    [
      `--pgdata=${dataDir}`,
      // scram over TCP so tests can prove a wrong password is refused; trust on the socket.
      '--auth-host=scram-sha-256',
      '--auth-local=trust',
      `--username=${superuser}`,
      `--pwfile=${passwordFile}`,
      '--encoding=UTF8',
      `--locale=${utf8Locale()}`,
      '--no-sync',
    ],
    dir,
    account,
  )
  await rm(passwordFile)
  if (initdb.status !== 0) throw new Error(`initdb failed:\n${initdb.stderr}${initdb.stdout}`)
  // Settings go in the file, not `pg_ctl -o`, which passes them through a shell.
  const quotedDir = `'${dir.replaceAll("'", "''")}'`
  await appendFile(
    join(dataDir, 'postgresql.conf'),
    [
      '',
      "listen_addresses = '127.0.0.1'",
      `unix_socket_directories = ${quotedDir}`,
      // Throwaway data: durability only costs time.
      'fsync = off',
      'synchronous_commit = off',
      'full_page_writes = off',
      'shared_buffers = 16MB',
      'max_connections = 50',
      '',
    ].join('\n'),
  )
}

/** Another process may take the port between choosing and binding it; then try another. */
async function startOnFreePort(pgCtl: string, dir: string, dataDir: string, account: Account) {
  const logFile = join(dir, 'server.log')
  for (let attempt = 1; ; attempt++) {
    const port = await freePort()
    await rm(logFile, { force: true })
    const started = await run(
      pgCtl,
      ['start', '-D', dataDir, '-l', logFile, '-w', '-t', '30', '-o', `-p ${port}`],
      dir,
      account,
    )
    if (started.status === 0) return port
    const log = await readFile(logFile, 'utf8').catch(() => '')
    if (log.includes('Address already in use') && attempt < startAttempts) continue
    throw new Error(
      `PostgreSQL did not start on port ${port}:\n${started.stderr}${started.stdout}\n${lastLines(log)}`,
    )
  }
}

async function stopServer(pgCtl: string, dir: string, dataDir: string, account: Account) {
  // Immediate is fine: the data is thrown away next.
  const stopped = await run(pgCtl, ['stop', '-D', dataDir, '-m', 'immediate', '-w'], dir, account)
  forgottenServers.delete(dir)
  await rm(dir, { recursive: true, force: true, maxRetries: 3 })
  // A server that already died (a test killed it) has nothing left to stop.
  const alreadyGone = stopped.stderr.includes('Is server running?')
  if (stopped.status !== 0 && !alreadyGone) {
    throw new Error(`pg_ctl stop failed:\n${stopped.stderr}`)
  }
}

function runPsql(psql: string, port: number, database: string, sql: string): string {
  const result = spawnSync(psql, ['-X', '-A', '-t', '-q', '-w', '-v', 'ON_ERROR_STOP=1'], {
    // SQL on stdin: argv has a size limit and would show up in `ps`.
    input: sql,
    encoding: 'utf8',
    maxBuffer: maxOutput,
    env: {
      ...withoutPgVariables(),
      PGHOST: '127.0.0.1',
      PGPORT: String(port),
      PGUSER: superuser,
      PGPASSWORD: superuserPassword,
      PGDATABASE: database,
      PGCLIENTENCODING: 'UTF8',
    },
  })
  if (result.error) throw result.error
  if (result.status !== 0) {
    throw new Error(`psql failed (exit ${result.status}): ${result.stderr.trim()}`)
  }
  return result.stdout.trim()
}

/** The caller's PG* variables (PGSSLMODE, PGSERVICE, ...) must not leak into our connections. */
function withoutPgVariables(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('PG')))
}

/** English messages: the port retry looks for 'Address already in use' in the log. */
function serverEnv(): NodeJS.ProcessEnv {
  return { ...withoutPgVariables(), LC_ALL: 'C' }
}

interface RunResult {
  status: number | null
  stdout: string
  stderr: string
}

/** Async, so several servers in one test file can start at the same time. */
function run(command: string, args: string[], cwd: string, account: Account): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    // cwd is our own folder: the `postgres` user may not be allowed into the caller's.
    const child = spawn(command, args, { cwd, env: serverEnv(), ...account })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (text: string) => {
      stdout += text
    })
    child.stderr.setEncoding('utf8').on('data', (text: string) => {
      stderr += text
    })
    child.on('error', reject)
    child.on('close', (status) => resolve({ status, stdout, stderr }))
  })
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      const port = typeof address === 'object' && address ? address.port : 0
      server.close(() => resolve(port))
    })
  })
}

let cachedLocale: string | undefined

/** C.UTF-8 sorts like C but stores any character; not every system has it. */
function utf8Locale(): string {
  if (cachedLocale === undefined) {
    const locales = spawnSync('locale', ['-a'], { encoding: 'utf8' }).stdout ?? ''
    cachedLocale = /^C\.utf-?8$/im.test(locales) ? 'C.UTF-8' : 'C'
  }
  return cachedLocale
}

/**
 * Vitest ends its workers with SIGTERM then SIGKILL (forks pool) or terminate() (threads pool),
 * so 'exit' handlers do not run there. This detached shell holds a pipe from us: when the pipe
 * closes without 'stopped' written to it, our process is gone, however it ended, and the shell
 * stops the server and removes its folder. Returns the function that tells it all is done.
 */
function startWatchdog(pgCtl: string, dir: string, dataDir: string, account: Account) {
  const script = [
    'read -r reply',
    '[ "$reply" = stopped ] && exit 0',
    '"$1" stop -D "$2" -m immediate -w -t 10',
    'rm -rf "$3"',
  ].join('\n')
  const watchdog = spawn('/bin/sh', ['-c', script, 'kluis-pg-watchdog', pgCtl, dataDir, dir], {
    cwd: '/',
    detached: true,
    stdio: ['pipe', 'ignore', 'ignore'],
    env: serverEnv(),
    ...account,
  })
  // Neither the shell nor its pipe may keep the test process alive.
  watchdog.unref()
  ;(watchdog.stdin as Socket).unref()
  watchdog.stdin.on('error', () => {})
  return () => {
    watchdog.stdin.end('stopped\n')
  }
}

/** Servers a test never stopped; stopped when the process exits so none outlive the run. */
const forgottenServers = new Map<string, () => void>()

process.on('exit', () => {
  for (const stop of forgottenServers.values()) {
    try {
      stop()
    } catch {
      // Best effort while exiting.
    }
  }
})

function lastLines(text: string, count = 30): string {
  return text.trimEnd().split('\n').slice(-count).join('\n')
}

function listDir(dir: string): string[] {
  try {
    return readdirSync(dir)
  } catch {
    return []
  }
}

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK)
    return true
  } catch {
    return false
  }
}

function findOnPath(name: string): string | undefined {
  const dirs = (process.env.PATH ?? '').split(delimiter).filter(Boolean)
  return dirs.map((dir) => join(dir, name)).find(isExecutable)
}
