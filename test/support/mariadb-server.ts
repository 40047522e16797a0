import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { accessSync, closeSync, constants, openSync, rmSync } from 'node:fs'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { createServer, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { delimiter, join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'

/** A throwaway MariaDB server on 127.0.0.1, for integration tests. */
export interface MariadbServer {
  port: number
  /** Has ALL PRIVILEGES ... WITH GRANT OPTION on *.*, over TCP from 127.0.0.1. */
  user: string
  /** Has URL-special characters, e.g. 'p@ss:w/rd%+ é'. */
  password: string
  /** The temporary folder holding the data directory, socket and logs; gone after stop(). */
  dir: string
  /** mysql://user:password@127.0.0.1:port/<database>, password percent-encoded; no database: '/'. */
  url(database?: string): string
  /**
   * Runs SQL (several statements are fine) with the `mariadb` client as `user`; returns stdout
   * trimmed. database may be '' for none.
   */
  sql(database: string, sql: string): string
  /** SELECT VERSION(), e.g. '10.11.6-MariaDB-0+deb12u1'. */
  version: string
  /** Shuts the server down and removes its folder; safe to call twice. */
  stop(): Promise<void>
}

const testUser = 'kluis'
const testPassword = 'p@ss:w/rd%+ é'
const startAttempts = 5
const startTimeoutMs = 30_000
const stopTimeoutMs = 30_000
/** Client output can be a whole table; spawnSync's default 1 MiB would cut it off. */
const maxOutput = 512 * 1024 * 1024

interface MariadbTools {
  server: string
  installDb: string
  client: string
}

/** mariadbd, mariadb-install-db and the mariadb client are all installed. */
export function mariadbAvailable(): boolean {
  return mariadbTools() !== undefined
}

function mariadbTools(): MariadbTools | undefined {
  // mariadbd lives in sbin (Debian) or libexec (Fedora), which a normal user's PATH lacks.
  const server = findExecutable('mariadbd', ['/usr/sbin', '/usr/libexec', '/sbin'])
  const installDb = findExecutable('mariadb-install-db', ['/usr/bin', '/usr/local/bin'])
  const client = findExecutable('mariadb', ['/usr/bin', '/usr/local/bin'])
  if (!server || !installDb || !client) return undefined
  return { server, installDb, client }
}

export async function startMariadb(): Promise<MariadbServer> {
  const tools = mariadbTools()
  if (!tools) throw new Error('MariaDB is not installed: apt-get install mariadb-server')
  const dir = await mkdtemp(join(tmpdir(), 'kluis-mariadb-'))
  const watchdog = startWatchdog(dir)
  let server: ChildProcess | undefined
  const killSync = () => {
    server?.kill('SIGKILL')
    rmSync(dir, { recursive: true, force: true, maxRetries: 3 })
  }
  forgottenServers.set(dir, killSync)
  try {
    await installDb(tools, dir)
    const started = await startOnFreePort(tools, dir, watchdog)
    server = started.server
    const port = started.port
    await createTestUser(tools, dir)
    const optionsFile = await writeClientOptions(dir, port)
    const sql = (database: string, text: string) =>
      runClient(tools.client, optionsFile, database, text)
    const version = sql('', 'SELECT VERSION()')
    const running = server
    let stopping: Promise<void> | undefined
    return {
      port,
      user: testUser,
      password: testPassword,
      dir,
      url: (database = '') =>
        `mysql://${encodeURIComponent(testUser)}:${encodeURIComponent(testPassword)}@127.0.0.1:${port}/${encodeURIComponent(database)}`,
      sql,
      version,
      stop: () => {
        stopping ??= stopServer(running, dir).finally(watchdog.disarm)
        return stopping
      },
    }
  } catch (error) {
    forgottenServers.delete(dir)
    killSync()
    watchdog.disarm()
    throw error
  }
}

/** Options for both the install (which runs mariadbd --bootstrap) and the server. */
function commonOptions(dir: string): string[] {
  return [
    // Must come first; keeps /etc/mysql and ~/.my.cnf out of it.
    '--no-defaults',
    // As root mariadbd runs only when told to; as a normal user it runs as that user.
    ...(process.getuid?.() === 0 ? ['--user=root'] : []),
    `--datadir=${join(dir, 'data')}`,
    // Our own: at startup mariadbd deletes every #sql* file in its tmpdir, so servers sharing
    // /tmp break each other's temporary tables (concurrent installs fail).
    `--tmpdir=${dir}`,
    // A small redo log is sized at install time; saves disk and time.
    '--innodb-log-file-size=16M',
    '--innodb-buffer-pool-size=64M',
    // io_uring/libaio are often blocked or capped in containers; tests don't need them.
    '--innodb-use-native-aio=0',
  ]
}

async function installDb(tools: MariadbTools, dir: string) {
  const installed = await run(
    tools.installDb,
    [
      ...commonOptions(dir),
      // root gets no password but only a socket login: TCP logins always need a password.
      '--auth-root-authentication-method=normal',
      '--skip-test-db',
      // Without it install-db looks up the host name, which fails in some containers.
      '--skip-name-resolve',
    ],
    dir,
  )
  if (installed.status !== 0) {
    throw new Error(
      `mariadb-install-db failed:\n${lastLines(installed.stderr || installed.stdout)}`,
    )
  }
}

/** Another process may take the port between choosing and binding it; then try another. */
async function startOnFreePort(tools: MariadbTools, dir: string, watchdog: Watchdog) {
  const errorLog = join(dir, 'error.log')
  const outputLog = join(dir, 'mariadbd.out')
  for (let attempt = 1; ; attempt++) {
    const port = await freePort()
    await rm(errorLog, { force: true })
    // A file, not a pipe, for early errors: a pipe would keep the test process alive.
    const output = openSync(outputLog, 'w')
    const server = spawn(
      tools.server,
      [
        ...commonOptions(dir),
        `--socket=${socketPath(dir)}`,
        `--port=${port}`,
        '--bind-address=127.0.0.1',
        `--pid-file=${join(dir, 'mariadbd.pid')}`,
        `--log-error=${errorLog}`,
        '--skip-log-bin',
        // Host names would turn 127.0.0.1 into 'localhost' and pick a different account.
        '--skip-name-resolve',
        '--character-set-server=utf8mb4',
        '--innodb-fast-shutdown=3',
        '--max-connections=50',
      ],
      { cwd: dir, stdio: ['ignore', output, output], env: englishEnv() },
    )
    closeSync(output)
    if (server.pid) watchdog.watch(server.pid)
    // A forgotten server must not keep the test process alive; the exit hook kills it.
    server.unref()
    let spawnError: Error | undefined
    server.on('error', (error) => {
      spawnError = error
    })
    const deadline = Date.now() + startTimeoutMs
    while (Date.now() < deadline && server.exitCode === null && server.signalCode === null) {
      if (spawnError) throw spawnError
      if ((await ping(tools.client, dir)) === 0) return { server, port }
      await sleep(50)
    }
    const exited = server.exitCode !== null || server.signalCode !== null
    await killAndWait(server)
    const log = `${await readLog(outputLog)}\n${await readLog(errorLog)}`
    if (exited && log.includes('Address already in use') && attempt < startAttempts) continue
    const why = exited ? 'exited' : `not ready within ${startTimeoutMs} ms`
    throw new Error(`MariaDB did not start on port ${port} (${why}):\n${lastLines(log)}`)
  }
}

async function ping(client: string, dir: string): Promise<number | null> {
  const result = await run(
    client,
    [
      '--no-defaults',
      `--socket=${socketPath(dir)}`,
      '--user=root',
      '--connect-timeout=2',
      '--execute=SELECT 1',
    ],
    dir,
  )
  return result.status
}

async function createTestUser(tools: MariadbTools, dir: string) {
  const password = sqlString(testPassword)
  const created = await run(
    tools.client,
    [
      '--no-defaults',
      `--socket=${socketPath(dir)}`,
      '--user=root',
      '--default-character-set=utf8mb4',
    ],
    dir,
    [
      // Both hosts: an anonymous ''@'localhost', if any, would win over '%' on the socket.
      `CREATE USER '${testUser}'@'%' IDENTIFIED BY ${password};`,
      `CREATE USER '${testUser}'@'localhost' IDENTIFIED BY ${password};`,
      `GRANT ALL PRIVILEGES ON *.* TO '${testUser}'@'%' WITH GRANT OPTION;`,
      `GRANT ALL PRIVILEGES ON *.* TO '${testUser}'@'localhost' WITH GRANT OPTION;`,
      // install-db also makes password-less root accounts for 127.0.0.1, ::1 and the host name.
      "DELETE FROM mysql.global_priv WHERE User = 'root' AND Host <> 'localhost';",
      "DELETE FROM mysql.proxies_priv WHERE Host <> 'localhost';",
      'FLUSH PRIVILEGES;',
    ].join('\n'),
  )
  if (created.status !== 0) throw new Error(`creating the test user failed:\n${created.stderr}`)
}

/**
 * The password goes in a 0600 options file, never argv (visible in `ps`). --defaults-file, not
 * --defaults-extra-file: the latter still reads ~/.my.cnf, whose password would win over ours.
 */
async function writeClientOptions(dir: string, port: number): Promise<string> {
  const file = join(dir, 'client.cnf')
  const options = [
    '[client]',
    `user=${optionValue(testUser)}`,
    `password=${optionValue(testPassword)}`,
    'host=127.0.0.1',
    `port=${port}`,
    'protocol=TCP',
    '',
  ]
  await writeFile(file, options.join('\n'), { mode: 0o600 })
  return file
}

function runClient(client: string, optionsFile: string, database: string, sql: string): string {
  const result = spawnSync(
    client,
    [
      `--defaults-file=${optionsFile}`,
      '--batch',
      '--skip-column-names',
      '--default-character-set=utf8mb4',
      ...(database ? [`--database=${database}`] : []),
    ],
    // SQL on stdin: argv has a size limit and would show up in `ps`.
    { input: sql, encoding: 'utf8', maxBuffer: maxOutput },
  )
  if (result.error) throw result.error
  if (result.status !== 0) {
    throw new Error(`mariadb failed (exit ${result.status}): ${result.stderr.trim()}`)
  }
  return result.stdout.trim()
}

async function stopServer(server: ChildProcess, dir: string) {
  await killAndWait(server, 'SIGTERM')
  forgottenServers.delete(dir)
  await rm(dir, { recursive: true, force: true, maxRetries: 3 })
}

/** SIGTERM is a clean shutdown; SIGKILL follows if it takes longer than stopTimeoutMs. */
async function killAndWait(server: ChildProcess, signal: NodeJS.Signals = 'SIGKILL') {
  if (server.exitCode !== null || server.signalCode !== null) return
  // Hold the process open while waiting, or a test that is otherwise done could exit under us.
  server.ref()
  const exited = new Promise((resolve) => server.once('exit', resolve))
  server.kill(signal)
  const timer = setTimeout(() => server.kill('SIGKILL'), stopTimeoutMs)
  await exited
  clearTimeout(timer)
}

interface RunResult {
  status: number | null
  stdout: string
  stderr: string
}

/** Async, so several servers in one test file can start at the same time. */
function run(command: string, args: string[], cwd: string, input = ''): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, env: englishEnv() })
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
    // A client that cannot connect exits unread (EPIPE); its exit status tells what happened.
    child.stdin.on('error', () => {})
    child.stdin.end(input)
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

/** English messages: the port retry looks for 'Address already in use' in the log. */
function englishEnv(): NodeJS.ProcessEnv {
  return { ...process.env, LC_ALL: 'C' }
}

function socketPath(dir: string): string {
  return join(dir, 'mariadbd.sock')
}

/** A quoted SQL string literal (MariaDB treats backslash as an escape). */
function sqlString(text: string): string {
  return `'${text.replaceAll('\\', '\\\\').replaceAll("'", "''")}'`
}

/** A quoted value for a my.cnf-style options file. */
function optionValue(text: string): string {
  return `"${text.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`
}

interface Watchdog {
  /** The server process to kill if we die. */
  watch(pid: number): void
  /** All is cleaned up; the watchdog can go. */
  disarm(): void
}

/**
 * Vitest ends its workers with SIGTERM then SIGKILL (forks pool) or terminate() (threads pool),
 * so 'exit' handlers do not run there. This detached shell holds a pipe from us: when the pipe
 * closes without 'stopped' written to it, our process is gone, however it ended, and the shell
 * kills the server and removes its folder.
 */
function startWatchdog(dir: string): Watchdog {
  const script = [
    'server=',
    'while read -r word pid; do',
    '  [ "$word" = stopped ] && exit 0',
    '  [ "$word" = server ] && server=$pid',
    'done',
    // Only if that pid is still our server, not a process that has since reused the number.
    'if [ -n "$server" ] && grep -qF -- "$1" "/proc/$server/cmdline" 2>/dev/null; then',
    '  kill -KILL "$server"',
    '  sleep 1',
    'fi',
    'rm -rf "$1"',
  ].join('\n')
  const watchdog = spawn('/bin/sh', ['-c', script, 'kluis-mariadb-watchdog', dir], {
    cwd: '/',
    detached: true,
    stdio: ['pipe', 'ignore', 'ignore'],
  })
  // Neither the shell nor its pipe may keep the test process alive.
  watchdog.unref()
  ;(watchdog.stdin as Socket).unref()
  watchdog.stdin.on('error', () => {})
  return {
    watch: (pid) => {
      watchdog.stdin.write(`server ${pid}\n`)
    },
    disarm: () => {
      watchdog.stdin.end('stopped\n')
    },
  }
}

/** Servers a test never stopped; killed when the process exits so none outlive the run. */
const forgottenServers = new Map<string, () => void>()

process.on('exit', () => {
  for (const kill of forgottenServers.values()) {
    try {
      kill()
    } catch {
      // Best effort while exiting.
    }
  }
})

async function readLog(file: string): Promise<string> {
  return readFile(file, 'utf8').catch(() => '')
}

function lastLines(text: string, count = 30): string {
  return text.trimEnd().split('\n').slice(-count).join('\n')
}

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK)
    return true
  } catch {
    return false
  }
}

function findExecutable(name: string, extraDirs: string[]): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter).filter(Boolean), ...extraDirs]
  return dirs.map((dir) => join(dir, name)).find(isExecutable)
}
