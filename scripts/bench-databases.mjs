// Benchmark: kluis backup and restore of PostgreSQL and MariaDB sources against the pipelines
// people use without it, `pg_dump | zstd -3 -T2 | gpg --encrypt` and
// `mariadb-dump | zstd -3 -T2 | gpg --encrypt` (and back), on the same generated data and
// throwaway servers, in the same run. Absolute speeds differ between machines, so the figures
// that matter are the ratios to the peer measured here.
//
//   npm run build && npm run bench:databases -- [ROWS] [--runs N] [--engine postgres|mariadb|both]
//                                                  [--dir DIR] [--json] [--keep] [--cpu-prof DIR]
//                                                  [--no-gnu-time]
//
// ROWS: rows to generate per engine, spread over four tables, with an optional decimal unit:
// 500k, 2M (default 2M). Exit codes: 0 ok, 1 a check failed (a restored database differs from
// the original, a step failed), 2 bad usage or a missing tool.
import { spawn, spawnSync } from 'node:child_process'
import {
  chmodSync,
  chownSync,
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs'
import { createServer } from 'node:net'
import { availableParallelism, cpus, tmpdir } from 'node:os'
import { dirname, join, relative, resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import {
  findGnuTime,
  formatBytes,
  measureProcess,
  printProfiles,
  readFileSyncSafe,
  readTimeFile,
  round,
  sh,
  TIME_FORMAT,
} from './bench-lib.mjs'

const projectRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const cli = join(projectRoot, 'dist', 'cli.js')
const MB = 1e6
const MiB = 1024 * 1024

// ---------------------------------------------------------------------------------------------
// Arguments

const usage = `Usage: npm run bench:databases -- [ROWS] [options]

  ROWS                 rows to generate per engine, e.g. 500k, 2M (decimal units; default 2M)
  --engine E           postgres, mariadb or both (default both)
  --runs N             repeat the timed steps N times (peer and kluis interleaved) and report
                       the median time and the highest peak RSS (default 1)
  --dir DIR            parent folder for the temporary servers and data (default: ${tmpdir()})
  --json               print the results as JSON on stdout (the table goes to stderr)
  --keep               keep the temporary folder (the servers are stopped anyway)
  --cpu-prof DIR       run kluis with --cpu-prof in the first run, write the profiles to DIR
                       and print the hottest functions (profiling slows kluis down: ratios are
                       not comparable)
  --no-gnu-time        measure peak RSS by polling /proc even when GNU time is installed
                       (then there are no CPU times)`

let args
try {
  args = parseArgs({
    allowPositionals: true,
    options: {
      engine: { type: 'string', default: 'both' },
      runs: { type: 'string', default: '1' },
      dir: { type: 'string' },
      json: { type: 'boolean', default: false },
      keep: { type: 'boolean', default: false },
      'cpu-prof': { type: 'string' },
      'no-gnu-time': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  })
} catch (error) {
  usageError(error.message)
}
if (args.values.help) {
  console.log(usage)
  process.exit(0)
}
if (args.positionals.length > 1) usageError(`unexpected argument '${args.positionals[1]}'`)
const rowCount = parseRows(args.positionals[0] ?? '2M')
const runCount = Number(args.values.runs)
if (!Number.isInteger(runCount) || runCount < 1) usageError('--runs must be a positive integer')
const engines = { both: ['postgres', 'mariadb'], postgres: ['postgres'], mariadb: ['mariadb'] }[
  args.values.engine
]
if (!engines) usageError(`--engine must be postgres, mariadb or both, not '${args.values.engine}'`)
const cpuProfDir = args.values['cpu-prof'] ? resolve(args.values['cpu-prof']) : undefined
// Human output goes to stderr when stdout carries JSON.
const out = args.values.json ? (text) => process.stderr.write(`${text}\n`) : console.log
const benchStarted = performance.now()
const progress = (text) =>
  process.stderr.write(
    `bench-databases [${((performance.now() - benchStarted) / 1000).toFixed(0).padStart(3)} s]: ${text}\n`,
  )

function usageError(message) {
  process.stderr.write(`bench-databases: ${message}\n\n${usage}\n`)
  process.exit(2)
}

function parseRows(text) {
  const match = /^(\d+(?:\.\d+)?)\s*([km]?)$/i.exec(text.trim())
  if (!match) usageError(`cannot read row count '${text}' (expected e.g. 500k or 2M)`)
  const rows = Math.round(Number(match[1]) * { '': 1, k: 1e3, m: 1e6 }[match[2].toLowerCase()])
  if (rows < 10_000) usageError(`${text} rows is too few: use at least 10k`)
  return rows
}

// ---------------------------------------------------------------------------------------------
// Preconditions

const [major, minor] = process.versions.node.split('.').map(Number)
if (major < 22 || (major === 22 && minor < 16)) {
  fatal(
    `Node ${process.versions.node} is too old for kluis: run it through npm ` +
      '(`npm run bench:databases`), which puts the pinned Node 24 first on PATH',
  )
}
if (major < 24) progress(`warning: Node ${process.versions.node}; the project pins Node 24`)
if (!existsSync(cli)) fatal(`${relative(process.cwd(), cli)} is missing: run \`npm run build\``)
for (const tool of ['zstd', 'gpg', 'bash']) {
  if (spawnSync(tool, ['--version'], { stdio: 'ignore' }).status !== 0)
    fatal(`'${tool}' is needed for the peer pipeline`)
}
const isRoot = process.getuid?.() === 0

/** PostgreSQL server and client tools: the newest /usr/lib/postgresql/<N>/bin that has them. */
const pgBin = engines.includes('postgres')
  ? (() => {
      const versions = listDir('/usr/lib/postgresql')
        .filter((name) => /^\d+$/.test(name))
        .sort((a, b) => Number(b) - Number(a))
      const names = ['initdb', 'pg_ctl', 'pg_dump', 'pg_restore', 'psql', 'pg_dumpall']
      const dir = versions
        .map((version) => `/usr/lib/postgresql/${version}/bin`)
        .find((dir) => names.every((name) => isExecutable(join(dir, name))))
      if (!dir)
        fatal(
          'PostgreSQL is not installed in /usr/lib/postgresql/<N>/bin: apt-get install postgresql',
        )
      if (isRoot && spawnSync('id', ['-u', 'postgres'], { stdio: 'ignore' }).status !== 0)
        fatal('as root, PostgreSQL must run as the `postgres` user, which does not exist')
      return dir
    })()
  : undefined

/** MariaDB server and client tools. */
const maria = engines.includes('mariadb')
  ? (() => {
      const find = (name, dirs) =>
        [...(process.env.PATH ?? '').split(':').filter(Boolean), ...dirs]
          .map((dir) => join(dir, name))
          .find(isExecutable)
      const tools = {
        server: find('mariadbd', ['/usr/sbin', '/usr/libexec', '/sbin']),
        installDb: find('mariadb-install-db', ['/usr/bin']),
        client: find('mariadb', ['/usr/bin']),
        dump: find('mariadb-dump', ['/usr/bin']),
      }
      const missing = Object.entries(tools).filter(([, path]) => !path)
      if (missing.length > 0)
        fatal(
          `MariaDB is not installed (no ${missing.map(([kind]) => kind).join(', ')}): ` +
            'apt-get install mariadb-server mariadb-client',
        )
      return tools
    })()
  : undefined

// GNU time reports the exact peak RSS (ru_maxrss) and CPU times of what it runs; else poll /proc.
const gnuTime = findGnuTime(args.values['no-gnu-time'])
const clockTicks = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout) || 100

function fatal(message) {
  process.stderr.write(`bench-databases: ${message}\n`)
  process.exit(2)
}

// ---------------------------------------------------------------------------------------------
// Temporary folder, servers and cleanup

const parent = resolve(args.values.dir ?? tmpdir())
mkdirSync(parent, { recursive: true })
const root = mkdtempSync(join(parent, 'kluis-bench-db-'))
// The `postgres` user must be able to reach its own folder inside.
if (isRoot) chmodSync(root, 0o711)
const paths = {
  keys: join(root, 'keys'),
  config: join(root, 'kluis.yml'),
  repo: join(root, 'repo'),
  tmp: join(root, 'tmp'),
  peer: join(root, 'peer'),
  gnupg: join(root, 'peer', 'gnupg'),
  measure: join(root, 'measure'),
  tools: join(root, 'tools'),
  postgres: join(root, 'postgres'),
  mariadb: join(root, 'mariadb'),
}
const PG_USER = 'postgres'
const MARIA_USER = 'bench'
const MARIA_PASSWORD = 'bench-pass:w/rd'
/** Filled in as the servers start; what cleanup() must stop. */
const servers = {}
/** Timed steps still running, stopped on a signal. */
const running = new Set()
let cleaned = false
function cleanup() {
  if (cleaned) return
  cleaned = true
  stopServersSync()
  // Decrypting started a gpg-agent for the temporary GNUPGHOME: stop it.
  if (existsSync(paths.gnupg)) {
    spawnSync('gpgconf', ['--kill', 'gpg-agent'], {
      env: { ...process.env, GNUPGHOME: paths.gnupg },
      stdio: 'ignore',
    })
  }
  if (args.values.keep) progress(`kept ${root}`)
  else rmSync(root, { recursive: true, force: true, maxRetries: 3 })
}
process.on('exit', cleanup)
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => {
    progress(`${signal}: stopping the servers and removing ${root}`)
    cleanup()
    process.exit(130)
  })
}

/** Synchronous, for exits and signals: PostgreSQL stopped immediately, mariadbd killed. */
function stopServersSync() {
  for (const child of running) child.kill('SIGTERM')
  if (servers.postgres) {
    asPostgres(join(pgBin, 'pg_ctl'), [
      'stop',
      '-D',
      servers.postgres.dataDir,
      '-m',
      'immediate',
      '-w',
      '-t',
      '30',
    ])
    servers.postgres = undefined
  }
  const child = servers.mariadb?.child
  if (child && child.exitCode === null && child.signalCode === null) {
    child.kill('SIGKILL')
    // Wait until it has let go of its files (a zombie holds none) before they are removed.
    for (let i = 0; i < 200 && processAlive(child.pid); i++)
      spawnSync('sleep', ['0.05'], { stdio: 'ignore' })
  }
  servers.mariadb = undefined
}

function processAlive(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z'
  } catch {
    return false
  }
}

/** As root, PostgreSQL's tools run as the `postgres` user (initdb and postgres refuse root). */
function asPostgres(command, commandArgs, options = {}) {
  const [file, argv] = isRoot
    ? ['runuser', ['-u', 'postgres', '--', command, ...commandArgs]]
    : [command, commandArgs]
  return spawnSync(file, argv, {
    cwd: paths.postgres,
    encoding: 'utf8',
    env: { ...cleanEnv(), LC_ALL: 'C' },
    ...options,
  })
}

/** The caller's PG* variables (PGSSLMODE, PGSERVICE, ...) must not leak into our connections. */
function cleanEnv() {
  return Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('PG')))
}

async function startPostgres() {
  mkdirSync(paths.postgres)
  if (isRoot) {
    const id = (flag) => Number(spawnSync('id', [flag, 'postgres'], { encoding: 'utf8' }).stdout)
    chownSync(paths.postgres, id('-u'), id('-g'))
  }
  const dataDir = join(paths.postgres, 'data')
  const locales = spawnSync('locale', ['-a'], { encoding: 'utf8' }).stdout ?? ''
  const initdb = asPostgres(join(pgBin, 'initdb'), [
    `--pgdata=${dataDir}`,
    // A throwaway server on loopback: no passwords.
    '--auth=trust',
    `--username=${PG_USER}`,
    '--encoding=UTF8',
    `--locale=${/^C\.utf-?8$/im.test(locales) ? 'C.UTF-8' : 'C'}`,
    '--no-sync',
  ])
  if (initdb.status !== 0)
    throw new BenchFailure(`initdb failed:\n${initdb.stderr}${initdb.stdout}`)
  const quotedDir = `'${paths.postgres.replaceAll("'", "''")}'`
  writeFileSync(
    join(dataDir, 'postgresql.conf'),
    [
      '',
      '# kluis bench-databases',
      "listen_addresses = '127.0.0.1'",
      `unix_socket_directories = ${quotedDir}`,
      // Throwaway data: durability only costs time (the same for kluis and the peer).
      'fsync = off',
      'synchronous_commit = off',
      'full_page_writes = off',
      'shared_buffers = 256MB',
      'maintenance_work_mem = 256MB',
      'max_wal_size = 4GB',
      // Autovacuum after a restore would run during the next timed step.
      'autovacuum = off',
      'max_connections = 50',
      '',
    ].join('\n'),
    { flag: 'a' },
  )
  const logFile = join(paths.postgres, 'server.log')
  for (let attempt = 1; ; attempt++) {
    const port = await freePort()
    rmSync(logFile, { force: true })
    servers.postgres = { dataDir, port }
    const started = asPostgres(join(pgBin, 'pg_ctl'), [
      'start',
      '-D',
      dataDir,
      '-l',
      logFile,
      '-w',
      '-t',
      '60',
      '-o',
      `-p ${port}`,
    ])
    if (started.status === 0) break
    servers.postgres = undefined
    const log = readFileSyncSafe(logFile)
    if (log.includes('Address already in use') && attempt < 5) continue
    throw new BenchFailure(`PostgreSQL did not start:\n${started.stderr}${lastLines(log)}`)
  }
  const server = servers.postgres
  server.pid = Number(readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0])
  server.url = (database) => `postgres://${PG_USER}@127.0.0.1:${server.port}/${database}`
  server.version = psql('postgres', 'SHOW server_version').split(' ')[0]
  return server
}

async function stopPostgres() {
  const server = servers.postgres
  if (!server) return
  servers.postgres = undefined
  asPostgres(join(pgBin, 'pg_ctl'), ['stop', '-D', server.dataDir, '-m', 'fast', '-w', '-t', '60'])
}

/** Runs SQL through psql as the superuser; returns stdout trimmed. */
function psql(database, sql) {
  const server = servers.postgres
  const result = spawnSync(
    join(pgBin, 'psql'),
    ['-X', '-A', '-t', '-q', '-w', '-v', 'ON_ERROR_STOP=1'],
    {
      input: sql,
      encoding: 'utf8',
      maxBuffer: 256 * MiB,
      env: {
        ...cleanEnv(),
        PGHOST: '127.0.0.1',
        PGPORT: String(server.port),
        PGUSER: PG_USER,
        PGDATABASE: database,
        PGCLIENTENCODING: 'UTF8',
      },
    },
  )
  if (result.error && !result.stderr) throw result.error
  if (result.status !== 0)
    throw new BenchFailure(`psql failed (exit ${result.status}): ${result.stderr.trim()}`)
  return result.stdout.trim()
}

function mariadbOptions(dir) {
  return [
    // Must come first; keeps /etc/mysql and ~/.my.cnf out of it.
    '--no-defaults',
    ...(isRoot ? ['--user=root'] : []),
    `--datadir=${join(dir, 'data')}`,
    // Our own: at startup mariadbd deletes every #sql* file in its tmpdir.
    `--tmpdir=${dir}`,
    // Room for the source and two restored copies: a restore must not evict the source, or
    // the next backup (the peer's, which runs first) pays for reading it back.
    '--innodb-buffer-pool-size=4G',
    '--innodb-log-file-size=512M',
    // Throwaway data: durability only costs time (the same for kluis and the peer).
    '--innodb-flush-log-at-trx-commit=0',
    '--innodb-doublewrite=0',
    // The default (200 pages/s) takes a minute to write out a restore before the next step.
    '--innodb-io-capacity=10000',
    '--innodb-io-capacity-max=20000',
    // io_uring/libaio are often blocked or capped in containers.
    '--innodb-use-native-aio=0',
    '--skip-name-resolve',
  ]
}

async function startMariadb() {
  const dir = paths.mariadb
  mkdirSync(dir)
  const socket = join(dir, 'mariadbd.sock')
  const installed = spawnSync(
    maria.installDb,
    [...mariadbOptions(dir), '--auth-root-authentication-method=normal', '--skip-test-db'],
    { cwd: dir, encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } },
  )
  if (installed.status !== 0)
    throw new BenchFailure(
      `mariadb-install-db failed:\n${lastLines(installed.stderr || installed.stdout)}`,
    )
  const rootClient = [
    '--no-defaults',
    `--socket=${socket}`,
    '--user=root',
    '--default-character-set=utf8mb4',
  ]
  const errorLog = join(dir, 'error.log')
  for (let attempt = 1; ; attempt++) {
    const port = await freePort()
    rmSync(errorLog, { force: true })
    const output = openSync(join(dir, 'mariadbd.out'), 'w')
    const child = spawn(
      maria.server,
      [
        ...mariadbOptions(dir),
        `--socket=${socket}`,
        `--port=${port}`,
        '--bind-address=127.0.0.1',
        `--pid-file=${join(dir, 'mariadbd.pid')}`,
        `--log-error=${errorLog}`,
        '--skip-log-bin',
        '--character-set-server=utf8mb4',
        '--max-connections=50',
      ],
      // Its own process group: Ctrl-C reaches us, and we stop it.
      {
        cwd: dir,
        stdio: ['ignore', output, output],
        detached: true,
        env: { ...process.env, LC_ALL: 'C' },
      },
    )
    closeSync(output)
    servers.mariadb = { child, port, dir, socket, pid: child.pid }
    child.on('error', () => {})
    const deadline = Date.now() + 60_000
    let ready = false
    while (Date.now() < deadline && child.exitCode === null && child.signalCode === null) {
      const ping = spawnSync(
        maria.client,
        [...rootClient, '--connect-timeout=2', '-e', 'SELECT 1'],
        {
          stdio: 'ignore',
        },
      )
      if (ping.status === 0) {
        ready = true
        break
      }
      await sleep(100)
    }
    if (ready) break
    const exited = child.exitCode !== null || child.signalCode !== null
    stopServersSync()
    const log = `${readFileSyncSafe(join(dir, 'mariadbd.out'))}\n${readFileSyncSafe(errorLog)}`
    if (exited && log.includes('Address already in use') && attempt < 5) continue
    throw new BenchFailure(`MariaDB did not start on port ${port}:\n${lastLines(log)}`)
  }
  const server = servers.mariadb
  const password = `'${MARIA_PASSWORD.replaceAll('\\', '\\\\').replaceAll("'", "''")}'`
  const created = spawnSync(maria.client, rootClient, {
    encoding: 'utf8',
    input: [
      `CREATE USER '${MARIA_USER}'@'%' IDENTIFIED BY ${password};`,
      `GRANT ALL PRIVILEGES ON *.* TO '${MARIA_USER}'@'%' WITH GRANT OPTION;`,
      // install-db also makes password-less root accounts for 127.0.0.1, ::1 and the host name.
      "DELETE FROM mysql.global_priv WHERE User = 'root' AND Host <> 'localhost';",
      'FLUSH PRIVILEGES;',
    ].join('\n'),
  })
  if (created.status !== 0)
    throw new BenchFailure(`creating the bench user failed:\n${created.stderr}`)
  // The peer's tools read the password from a 0600 option file, never argv.
  server.optionsFile = join(dir, 'client.cnf')
  writeFileSync(
    server.optionsFile,
    [
      '[client]',
      `user=${MARIA_USER}`,
      `password="${MARIA_PASSWORD}"`,
      'host=127.0.0.1',
      `port=${server.port}`,
      'protocol=TCP',
      '',
    ].join('\n'),
    { mode: 0o600 },
  )
  server.url = (database) =>
    `mysql://${MARIA_USER}:${encodeURIComponent(MARIA_PASSWORD)}@127.0.0.1:${server.port}/${database}`
  server.version = mariadb('', 'SELECT VERSION()')
  return server
}

async function stopMariadb() {
  const server = servers.mariadb
  if (!server) return
  const { child } = server
  if (child.exitCode === null && child.signalCode === null) {
    const exited = new Promise((resolvePromise) => child.once('exit', resolvePromise))
    child.kill('SIGTERM')
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000)
    await exited
    clearTimeout(timer)
  }
  servers.mariadb = undefined
}

/** Runs SQL with the `mariadb` client as the bench user; returns stdout trimmed. */
function mariadb(database, sql) {
  const result = spawnSync(
    maria.client,
    [
      `--defaults-file=${servers.mariadb.optionsFile}`,
      '--batch',
      '--skip-column-names',
      '--default-character-set=utf8mb4',
      '--max-allowed-packet=1G',
      ...(database ? [`--database=${database}`] : []),
    ],
    { input: sql, encoding: 'utf8', maxBuffer: 256 * MiB },
  )
  // A client that stops at an error leaves its input unread (EPIPE): its stderr says why.
  if (result.error && !result.stderr) throw result.error
  if (result.status !== 0)
    throw new BenchFailure(`mariadb failed (exit ${result.status}): ${result.stderr.trim()}`)
  return result.stdout.trim()
}

function freePort() {
  return new Promise((resolvePromise, reject) => {
    const server = createServer()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => resolvePromise(address.port))
    })
  })
}

/**
 * CPU seconds used so far by the server: for PostgreSQL the postmaster, its live children and
 * its exited children (backends end with their connection); mariadbd is one process.
 */
function serverCpu(engine) {
  const pid = (engine === 'postgres' ? servers.postgres : servers.mariadb)?.pid
  if (!pid) return undefined
  const ticks = (fields, withChildren) =>
    fields[11] + fields[12] + (withChildren ? fields[13] + fields[14] : 0)
  let total = ticks(procStat(pid) ?? [], true)
  if (engine === 'postgres') {
    for (const entry of listDir('/proc')) {
      if (!/^\d+$/.test(entry)) continue
      const fields = procStat(entry)
      if (fields && fields[1] === pid) total += ticks(fields, true)
    }
  }
  return total / clockTicks
}

/** CPU seconds the whole machine has been busy (all CPUs, including time stolen by the host). */
function machineBusy() {
  const fields = /^cpu\s+(.+)$/m.exec(readFileSyncSafe('/proc/stat'))?.[1].split(/\s+/).map(Number)
  if (!fields) return 0
  // user nice system idle iowait irq softirq steal: all but idle and iowait.
  const [user, nice, system, , , irq, softirq, steal = 0] = fields
  return (user + nice + system + irq + softirq + steal) / clockTicks
}

/** /proc/PID/stat from field 3 (state) on, numbers where they are numbers; undefined if gone. */
function procStat(pid) {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return text
      .slice(text.lastIndexOf(')') + 2)
      .split(' ')
      .map((field, i) => (i === 0 ? field : Number(field)))
  } catch {
    return undefined
  }
}

class BenchFailure extends Error {}

// ---------------------------------------------------------------------------------------------
// Generated data: the same four tables in both engines, ROWS rows in all

/**
 * customers 5 %, orders 25 %, events 68 %, attachments 2 %: short rows with text of varying
 * length, timestamps and JSON, and a few larger ones with binary (60 % random bytes, like
 * images) or text attachments of 256 B – 16 KiB (log-uniform).
 */
function tableCounts(rows) {
  const customers = Math.round(rows * 0.05)
  const orders = Math.round(rows * 0.25)
  const attachments = Math.round(rows * 0.02)
  return { customers, orders, events: rows - customers - orders - attachments, attachments }
}
const TABLES = ['attachments', 'customers', 'events', 'orders']

/** Word-like text lines (deterministic): the material of every text column. */
function makeLines(count) {
  let state = 0x9e3779b9
  const random = () => {
    // mulberry32
    state = (state + 0x6d2b79f5) | 0
    let t = Math.imul(state ^ (state >>> 15), 1 | state)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32
  }
  const letters = 'etaoinshrdlcumwfgypbvkjxqz'
  const words = []
  for (let i = 0; i < 4096; i++) {
    let word = ''
    const length = 2 + Math.floor(random() * 9)
    for (let j = 0; j < length; j++) word += letters[Math.floor(letters.length * random() ** 2)]
    words.push(word)
  }
  const lines = []
  for (let i = 0; i < count; i++) {
    const parts = []
    const n = 20 + Math.floor(random() * 60)
    for (let k = 0; k < n; k++) {
      parts.push(
        random() < 0.05
          ? String(Math.floor(random() * 100000))
          : words[Math.floor(words.length * random() ** 3)],
      )
      if (random() < 0.08) parts[parts.length - 1] += random() < 0.5 ? '.' : ','
    }
    lines.push(parts.join(' '))
  }
  return lines
}
const LINE_COUNT = 16384

function insertLinesSql(lines) {
  const statements = []
  for (let at = 0; at < lines.length; at += 1000) {
    const values = lines
      .slice(at, at + 1000)
      .map((line, i) => `(${at + i}, '${line}')`)
      .join(',\n')
    statements.push(`INSERT INTO corpus VALUES\n${values};`)
  }
  return statements.join('\n')
}

function postgresGenerateSql(counts, lines) {
  const NL = lines.length
  // Picks a line from the row number: a join, not random() (volatile in a join condition).
  const line = (alias, salt) => `JOIN corpus ${alias} ON ${alias}.i = (g * ${salt}) % ${NL}`
  return `
SET synchronous_commit = off;
SELECT setseed(0.42);
CREATE TEMP TABLE corpus (i int PRIMARY KEY, line text NOT NULL);
${insertLinesSql(lines)}
CREATE EXTENSION pgcrypto;

CREATE TABLE customers (
  id bigint PRIMARY KEY,
  name text NOT NULL,
  email text NOT NULL,
  country char(2) NOT NULL,
  created_at timestamptz NOT NULL,
  profile jsonb NOT NULL
);
INSERT INTO customers
SELECT g,
  initcap(substr(l.line, 1 + (g % 40)::int, 6 + (g % 19)::int)),
  'customer' || g || '@' || (ARRAY['example.com', 'example.org', 'mail.example.net', 'example.nl'])[1 + (g % 4)::int],
  (ARRAY['NL', 'BE', 'DE', 'FR', 'GB', 'US', 'ES', 'IT', 'PL', 'SE'])[1 + floor(random() * 10)::int],
  timestamptz '2016-01-01 00:00:00+00' + g * interval '17 minutes' + random() * interval '17 minutes',
  jsonb_build_object(
    'newsletter', random() < 0.3,
    'language', (ARRAY['nl', 'en', 'de', 'fr'])[1 + floor(random() * 4)::int],
    'score', floor(random() * 1000)::int,
    'tags', jsonb_build_array(substr(l2.line, 1, 7), substr(l2.line, 9, 5)),
    'address', jsonb_build_object(
      'street', initcap(substr(l2.line, 20, 14)),
      'number', 1 + floor(random() * 300)::int,
      'postcode', lpad(floor(random() * 10000)::int::text, 4, '0')))
FROM generate_series(1, ${counts.customers}::bigint) g
${line('l', 7919)}
${line('l2', 104729)};

CREATE TABLE orders (
  id bigint PRIMARY KEY,
  customer_id bigint NOT NULL,
  created_at timestamptz NOT NULL,
  status text NOT NULL,
  total numeric(12, 2) NOT NULL,
  currency char(3) NOT NULL,
  note text
);
INSERT INTO orders
SELECT g,
  1 + floor(random() * ${counts.customers})::bigint,
  timestamptz '2019-01-01 00:00:00+00' + g * interval '7 seconds' + random() * interval '7 seconds',
  (ARRAY['delivered', 'delivered', 'delivered', 'shipped', 'paid', 'pending', 'cancelled', 'refunded'])[1 + floor(random() * 8)::int],
  round((5 + random() * random() * 995)::numeric, 2),
  (ARRAY['EUR', 'EUR', 'EUR', 'USD', 'GBP'])[1 + floor(random() * 5)::int],
  CASE WHEN random() < 0.35
    THEN substr(l.line, 1 + floor(random() * 80)::int, 10 + floor(random() * random() * 240)::int) END
FROM generate_series(1, ${counts.orders}::bigint) g
${line('l', 7919)};

CREATE TABLE events (
  id bigint PRIMARY KEY,
  customer_id bigint NOT NULL,
  occurred_at timestamptz NOT NULL,
  kind text NOT NULL,
  ip text NOT NULL,
  message text NOT NULL,
  attributes jsonb
);
INSERT INTO events
SELECT g,
  1 + floor(random() * ${counts.customers})::bigint,
  timestamptz '2024-01-01 00:00:00+00' + g * interval '500 milliseconds' + random() * interval '500 milliseconds',
  (ARRAY['page_view', 'page_view', 'page_view', 'click', 'click', 'search', 'login', 'logout', 'add_to_cart', 'checkout', 'error'])[1 + floor(random() * 11)::int],
  '10.' || floor(random() * 256)::int || '.' || floor(random() * 256)::int || '.' || floor(random() * 256)::int,
  substr(l.line, 1 + floor(random() * 60)::int, 16 + floor(random() * random() * 300)::int),
  CASE WHEN random() < 0.8 THEN jsonb_build_object(
    'session', left(md5((g / 20)::text), 16),
    'path', '/' || replace(substr(l2.line, 1 + floor(random() * 40)::int, 8 + floor(random() * 24)::int), ' ', '/'),
    'duration_ms', floor(random() * random() * 5000)::int,
    'status', (ARRAY[200, 200, 200, 200, 200, 200, 301, 304, 404, 500])[1 + floor(random() * 10)::int]) END
FROM generate_series(1, ${counts.events}::bigint) g
${line('l', 7919)}
${line('l2', 104729)};

CREATE TABLE attachments (
  id bigint PRIMARY KEY,
  order_id bigint NOT NULL,
  filename text NOT NULL,
  content_type text NOT NULL,
  created_at timestamptz NOT NULL,
  data bytea NOT NULL
);
INSERT INTO attachments
SELECT g,
  1 + floor(random() * ${counts.orders})::bigint,
  'attachment-' || g || CASE WHEN g % 5 < 3 THEN '.jpg' ELSE '.txt' END,
  CASE WHEN g % 5 < 3 THEN 'image/jpeg' ELSE 'text/plain' END,
  timestamptz '2019-01-01 00:00:00+00' + g * interval '3 minutes',
  CASE WHEN g % 5 < 3
    THEN substr((SELECT string_agg(gen_random_bytes(1024), ''::bytea) FROM generate_series(0, size / 1024)), 1, size)
    ELSE convert_to(left(repeat(l.line || E'\\n', size / 200 + 1), size), 'UTF8') END
FROM (
  SELECT g, floor(256 * power(64.0, ((g * 2654435761) % 4294967296) / 4294967296.0))::int AS size
  FROM generate_series(1, ${counts.attachments}::bigint) g
) s
${line('l', 7919)};

DROP EXTENSION pgcrypto;
CREATE INDEX orders_customer ON orders (customer_id);
CREATE INDEX events_customer ON events (customer_id, occurred_at);
CREATE INDEX attachments_order ON attachments (order_id);
ALTER TABLE orders ADD FOREIGN KEY (customer_id) REFERENCES customers;
ALTER TABLE attachments ADD FOREIGN KEY (order_id) REFERENCES orders;
`
}

function mariadbGenerateSql(counts, lines) {
  const NL = lines.length
  const line = (alias, salt) => `JOIN corpus ${alias} ON ${alias}.i = (s.seq * ${salt}) % ${NL}`
  const elt = (n, values) =>
    `ELT(1 + FLOOR(RAND() * ${n}), ${values.map((v) => `'${v}'`).join(', ')})`
  const capitalized = (text) => `CONCAT(UPPER(LEFT(${text}, 1)), SUBSTRING(${text}, 2))`
  return `
SET SESSION unique_checks = 0, foreign_key_checks = 0;
SET SESSION optimizer_switch = 'subquery_cache=off';
SET SESSION group_concat_max_len = 67108864;
CREATE TEMPORARY TABLE corpus (i INT PRIMARY KEY, line TEXT NOT NULL);
${insertLinesSql(lines)}

CREATE TABLE customers (
  id BIGINT NOT NULL PRIMARY KEY,
  name VARCHAR(100) NOT NULL,
  email VARCHAR(200) NOT NULL,
  country CHAR(2) NOT NULL,
  created_at DATETIME(6) NOT NULL,
  profile JSON NOT NULL
) ENGINE=InnoDB;
INSERT INTO customers
SELECT s.seq,
  ${capitalized('SUBSTRING(l.line, 1 + s.seq % 40, 6 + s.seq % 19)')},
  CONCAT('customer', s.seq, '@', ELT(1 + s.seq % 4, 'example.com', 'example.org', 'mail.example.net', 'example.nl')),
  ${elt(10, ['NL', 'BE', 'DE', 'FR', 'GB', 'US', 'ES', 'IT', 'PL', 'SE'])},
  TIMESTAMP'2016-01-01 00:00:00' + INTERVAL (s.seq * 1020000000 + FLOOR(RAND() * 1020000000)) MICROSECOND,
  JSON_OBJECT(
    'newsletter', IF(RAND() < 0.3, TRUE, FALSE),
    'language', ${elt(4, ['nl', 'en', 'de', 'fr'])},
    'score', FLOOR(RAND() * 1000),
    'tags', JSON_ARRAY(SUBSTRING(l2.line, 1, 7), SUBSTRING(l2.line, 9, 5)),
    'address', JSON_OBJECT(
      'street', ${capitalized('SUBSTRING(l2.line, 20, 14)')},
      'number', 1 + FLOOR(RAND() * 300),
      'postcode', LPAD(FLOOR(RAND() * 10000), 4, '0')))
FROM seq_1_to_${counts.customers} s
${line('l', 7919)}
${line('l2', 104729)};

CREATE TABLE orders (
  id BIGINT NOT NULL PRIMARY KEY,
  customer_id BIGINT NOT NULL,
  created_at DATETIME(6) NOT NULL,
  status VARCHAR(20) NOT NULL,
  total DECIMAL(12, 2) NOT NULL,
  currency CHAR(3) NOT NULL,
  note TEXT
) ENGINE=InnoDB;
INSERT INTO orders
SELECT s.seq,
  1 + FLOOR(RAND() * ${counts.customers}),
  TIMESTAMP'2019-01-01 00:00:00' + INTERVAL (s.seq * 7000000 + FLOOR(RAND() * 7000000)) MICROSECOND,
  ${elt(8, ['delivered', 'delivered', 'delivered', 'shipped', 'paid', 'pending', 'cancelled', 'refunded'])},
  ROUND(5 + RAND() * RAND() * 995, 2),
  ${elt(5, ['EUR', 'EUR', 'EUR', 'USD', 'GBP'])},
  IF(RAND() < 0.35, SUBSTRING(l.line, 1 + FLOOR(RAND() * 80), 10 + FLOOR(RAND() * RAND() * 240)), NULL)
FROM seq_1_to_${counts.orders} s
${line('l', 7919)};

CREATE TABLE events (
  id BIGINT NOT NULL PRIMARY KEY,
  customer_id BIGINT NOT NULL,
  occurred_at DATETIME(6) NOT NULL,
  kind VARCHAR(20) NOT NULL,
  ip VARCHAR(15) NOT NULL,
  message TEXT NOT NULL,
  attributes JSON
) ENGINE=InnoDB;
INSERT INTO events
SELECT s.seq,
  1 + FLOOR(RAND() * ${counts.customers}),
  TIMESTAMP'2024-01-01 00:00:00' + INTERVAL (s.seq * 500000 + FLOOR(RAND() * 500000)) MICROSECOND,
  ${elt(11, ['page_view', 'page_view', 'page_view', 'click', 'click', 'search', 'login', 'logout', 'add_to_cart', 'checkout', 'error'])},
  CONCAT('10.', FLOOR(RAND() * 256), '.', FLOOR(RAND() * 256), '.', FLOOR(RAND() * 256)),
  SUBSTRING(l.line, 1 + FLOOR(RAND() * 60), 16 + FLOOR(RAND() * RAND() * 300)),
  IF(RAND() < 0.8, JSON_OBJECT(
    'session', LEFT(MD5(s.seq DIV 20), 16),
    'path', CONCAT('/', REPLACE(SUBSTRING(l2.line, 1 + FLOOR(RAND() * 40), 8 + FLOOR(RAND() * 24)), ' ', '/')),
    'duration_ms', FLOOR(RAND() * RAND() * 5000),
    'status', ELT(1 + FLOOR(RAND() * 10), 200, 200, 200, 200, 200, 200, 301, 304, 404, 500)), NULL)
FROM seq_1_to_${counts.events} s
${line('l', 7919)}
${line('l2', 104729)};

CREATE TABLE attachments (
  id BIGINT NOT NULL PRIMARY KEY,
  order_id BIGINT NOT NULL,
  filename VARCHAR(100) NOT NULL,
  content_type VARCHAR(50) NOT NULL,
  created_at DATETIME(6) NOT NULL,
  data MEDIUMBLOB NOT NULL
) ENGINE=InnoDB;
INSERT INTO attachments
SELECT s.seq,
  1 + FLOOR(RAND() * ${counts.orders}),
  CONCAT('attachment-', s.seq, IF(s.seq % 5 < 3, '.jpg', '.txt')),
  IF(s.seq % 5 < 3, 'image/jpeg', 'text/plain'),
  TIMESTAMP'2019-01-01 00:00:00' + INTERVAL (s.seq * 3) MINUTE,
  IF(s.seq % 5 < 3,
    LEFT((SELECT GROUP_CONCAT(RANDOM_BYTES(1024) SEPARATOR x'') FROM seq_0_to_16 r
          WHERE r.seq <= s.size DIV 1024 AND s.seq > 0), s.size),
    CAST(LEFT(REPEAT(CONCAT(l.line, '\\n'), s.size DIV 200 + 1), s.size) AS BINARY))
FROM (
  SELECT seq, FLOOR(256 * POW(64, ((seq * 2654435761) % 4294967296) / 4294967296)) AS size
  FROM seq_1_to_${counts.attachments}
) s
${line('l', 7919)};

ALTER TABLE orders ADD INDEX orders_customer (customer_id),
  ADD FOREIGN KEY (customer_id) REFERENCES customers (id);
ALTER TABLE events ADD INDEX events_customer (customer_id, occurred_at);
ALTER TABLE attachments ADD INDEX attachments_order (order_id),
  ADD FOREIGN KEY (order_id) REFERENCES orders (id);
`
}

/** Row counts and a checksum per table: what a restore must reproduce. */
function databaseDigest(engine, database) {
  const tables = {}
  if (engine === 'postgres') {
    for (const table of TABLES) {
      const [rows, md5] = psql(
        database,
        `SELECT count(*) || ' ' || coalesce(md5(string_agg(md5(t::text), '' ORDER BY id)), '') FROM ${table} t`,
      ).split(' ')
      tables[table] = { rows: Number(rows), checksum: md5 }
    }
  } else {
    const counts = mariadb(
      database,
      TABLES.map((table) => `SELECT COUNT(*) FROM ${table};`).join('\n'),
    ).split('\n')
    // Lines of `database.table<TAB>checksum`.
    const checksums = new Map(
      mariadb(database, `CHECKSUM TABLE ${TABLES.join(', ')};`)
        .split('\n')
        .map((line) => line.split('\t'))
        .map(([name, checksum]) => [name.slice(name.indexOf('.') + 1), checksum]),
    )
    TABLES.forEach((table, i) => {
      tables[table] = { rows: Number(counts[i]), checksum: checksums.get(table) }
    })
  }
  return tables
}

function compareDigest(who, engine, original, restored, problems) {
  for (const table of TABLES) {
    const a = original[table]
    const b = restored[table]
    if (!b || b.rows !== a.rows)
      problems.push(
        `${engine} ${who}: table ${table} has ${b?.rows} rows after the restore, originally ${a.rows}`,
      )
    else if (b.checksum !== a.checksum)
      problems.push(`${engine} ${who}: table ${table} differs from the original (checksum)`)
  }
}

function databaseBytes(engine) {
  return Number(
    engine === 'postgres'
      ? psql('bench', "SELECT pg_database_size('bench')")
      : mariadb(
          '',
          "SELECT SUM(data_length + index_length) FROM information_schema.tables WHERE table_schema = 'bench'",
        ),
  )
}

function dropDatabase(engine, name) {
  if (engine === 'postgres') psql('postgres', `DROP DATABASE IF EXISTS ${name}`)
  else mariadb('', `DROP DATABASE IF EXISTS ${name}`)
}

function createDatabase(engine, name) {
  if (engine === 'postgres') psql('postgres', `CREATE DATABASE ${name}`)
  else mariadb('', `CREATE DATABASE ${name} CHARACTER SET utf8mb4`)
}

// ---------------------------------------------------------------------------------------------
// The run

const ENGINE_NAME = { postgres: 'PostgreSQL', mariadb: 'MariaDB' }
const SOURCE = { postgres: 'postgres', mariadb: 'mysql' }
/** What kluis passes to mariadb-dump (src/sources/mysql.ts): the peer dumps the same. */
const MARIADB_DUMP_FLAGS = [
  '--single-transaction',
  '--routines',
  '--triggers',
  '--events',
  '--hex-blob',
  '--default-character-set=utf8mb4',
  '--skip-dump-date',
  '--no-tablespaces',
  '--quick',
  '--max-allowed-packet=1G',
]

async function run() {
  for (const dir of [paths.tmp, paths.peer, paths.measure, paths.tools])
    mkdirSync(dir, { recursive: true })
  mkdirSync(paths.gnupg, { mode: 0o700 })
  const started = performance.now()

  const data = {}
  const digests = {}
  const lines = makeLines(LINE_COUNT)
  const counts = tableCounts(rowCount)
  for (const engine of engines) {
    progress(`starting a throwaway ${ENGINE_NAME[engine]} server in ${root}`)
    const server = engine === 'postgres' ? await startPostgres() : await startMariadb()
    progress(`${ENGINE_NAME[engine]} ${server.version} on 127.0.0.1:${server.port}`)
    progress(
      `generating ${rowCount.toLocaleString('en')} rows (${Object.entries(counts)
        .map(([table, n]) => `${table} ${n.toLocaleString('en')}`)
        .join(', ')})`,
    )
    const generateStarted = performance.now()
    createDatabase(engine, 'bench')
    if (engine === 'postgres') {
      psql('bench', postgresGenerateSql(counts, lines))
      // Hint bits and visibility map set now, not by the first timed dump.
      psql('bench', 'VACUUM (FREEZE, ANALYZE)')
    } else {
      mariadb('bench', mariadbGenerateSql(counts, lines))
    }
    const generateSeconds = (performance.now() - generateStarted) / 1000
    progress(`computing row counts and checksums of the original (for the restore checks)`)
    digests[engine] = databaseDigest(engine, 'bench')
    data[engine] = {
      server: `${ENGINE_NAME[engine]} ${server.version}`,
      rows: Object.fromEntries(TABLES.map((t) => [t, digests[engine][t].rows])),
      databaseBytes: databaseBytes(engine),
      generateSeconds: round(generateSeconds, 1),
    }
    progress(
      `generated in ${generateSeconds.toFixed(1)} s: ${formatBytes(data[engine].databaseBytes)} on the server`,
    )
  }

  // kluis setup (not timed)
  await kluis(['keys', 'generate', '--out', 'keys'])
  const sourceLines = []
  if (servers.postgres)
    sourceLines.push(
      `  - name: ${SOURCE.postgres}`,
      '    type: postgres',
      `    url: "${servers.postgres.url('bench')}"`,
    )
  if (servers.mariadb)
    sourceLines.push(
      `  - name: ${SOURCE.mariadb}`,
      '    type: mysql',
      `    url: "${servers.mariadb.url('bench')}"`,
    )
  writeFileSync(
    paths.config,
    [
      'repository: file://./repo',
      'keys:',
      '  readers: [keys/reader.asc]',
      '  writer: keys/writer.key',
      '  writer-public: keys/writer.asc',
      'sources:',
      ...sourceLines,
      '',
    ].join('\n'),
  )
  const kluisEnv = { ...cleanEnv(), KLUIS_TMPDIR: paths.tmp }
  // The database tools kluis runs go through GNU time too, so that their CPU time can be told
  // apart from node's: wrappers in folders named by KLUIS_POSTGRES_BIN / KLUIS_MYSQL_BIN.
  const toolTimes = {}
  if (pgBin) {
    const dir = join(paths.tools, 'postgres')
    toolTimes.postgres = join(paths.measure, 'tools-postgres')
    writeWrappers(
      dir,
      ['pg_dump', 'pg_restore', 'psql', 'pg_dumpall'].map((name) => [name, join(pgBin, name)]),
      toolTimes.postgres,
    )
    kluisEnv.KLUIS_POSTGRES_BIN = dir
  }
  if (maria) {
    const dir = join(paths.tools, 'mariadb')
    toolTimes.mariadb = join(paths.measure, 'tools-mariadb')
    writeWrappers(
      dir,
      [
        ['mariadb-dump', maria.dump],
        ['mariadb', maria.client],
      ],
      toolTimes.mariadb,
    )
    kluisEnv.KLUIS_MYSQL_BIN = dir
  }

  // peer setup (not timed)
  const gpgEnv = { ...cleanEnv(), GNUPGHOME: paths.gnupg }
  await measure(
    'bash',
    ['-c', `gpg --batch --quiet --import ${sh(join(paths.keys, 'reader.key'))}`],
    { env: gpgEnv, pollRss: false },
  )
  const stage = (name) =>
    gnuTime ? `${gnuTime} -f '${TIME_FORMAT}' -o ${sh(join(paths.measure, name))} ` : ''
  // The peer's figures: peak RSS and CPU time summed over its three processes; `tool` is the
  // database tool's (pg_dump, pg_restore, mariadb-dump, mariadb).
  const peerStats = (names, toolIndex) => {
    if (!gnuTime) return {}
    const stats = names.map((name) => readTimeFile(join(paths.measure, name)))
    return {
      peakRss: stats.reduce((sum, s) => sum + s.peakRss, 0),
      cpuSeconds: stats.reduce((sum, s) => sum + s.cpuSeconds, 0),
      toolCpuSeconds: stats[toolIndex].cpuSeconds,
    }
  }
  const gpgEncrypt = `gpg --batch --yes --trust-model always --encrypt --recipient-file ${sh(join(paths.keys, 'reader.asc'))}`
  const peerCommands = {
    postgres: {
      backup: (file) =>
        `${stage('pb1')}${sh(join(pgBin, 'pg_dump'))} --format=custom --compress=0 ` +
        `--dbname=${sh(servers.postgres.url('bench'))} | ` +
        `${stage('pb2')}zstd -3 -T2 -q -c | ${stage('pb3')}${gpgEncrypt} -o ${sh(file)}`,
      restore: (file, database) =>
        `${stage('pr1')}gpg --batch --quiet --decrypt ${sh(file)} | ${stage('pr2')}zstd -d -q -c | ` +
        `${stage('pr3')}${sh(join(pgBin, 'pg_restore'))} --single-transaction --exit-on-error ` +
        `--dbname=${sh(servers.postgres.url(database))}`,
    },
    mariadb: {
      backup: (file) =>
        `${stage('pb1')}${sh(maria.dump)} --defaults-file=${sh(servers.mariadb.optionsFile)} ` +
        `${MARIADB_DUMP_FLAGS.join(' ')} bench | ` +
        `${stage('pb2')}zstd -3 -T2 -q -c | ${stage('pb3')}${gpgEncrypt} -o ${sh(file)}`,
      restore: (file, database) =>
        `${stage('pr1')}gpg --batch --quiet --decrypt ${sh(file)} | ${stage('pr2')}zstd -d -q -c | ` +
        `${stage('pr3')}${sh(maria.client)} --defaults-file=${sh(servers.mariadb.optionsFile)} ` +
        `--default-character-set=utf8mb4 --max-allowed-packet=1G ${database}`,
    },
  }

  /** Runs one timed step with the server's CPU time and the settling before it. */
  const step = async (engine, label, runStep) => {
    settle(engine)
    progress(label)
    const cpuBefore = serverCpu(engine)
    const busyBefore = machineBusy()
    const result = await runStep()
    // Backends exit (and are counted) just after their client.
    await sleep(300)
    const cpuAfter = serverCpu(engine)
    const busyAfter = machineBusy()
    if (cpuBefore !== undefined && cpuAfter !== undefined)
      result.serverCpuSeconds = cpuAfter - cpuBefore
    // What the rest of the machine did meanwhile: a busy neighbour explains a slow run.
    if (result.cpuSeconds !== undefined && result.serverCpuSeconds !== undefined)
      result.otherCpuSeconds = Math.max(
        0,
        busyAfter - busyBefore - result.cpuSeconds - result.serverCpuSeconds,
      )
    return result
  }
  const kluisStep = async (engine, cliArgs, profile) => {
    rmSync(toolTimes[engine] ?? join(paths.measure, 'none'), { force: true })
    const result = await kluis(cliArgs, kluisEnv, profile)
    if (gnuTime) result.toolCpuSeconds = sumTimeFile(toolTimes[engine]).cpuSeconds
    return result
  }

  // Each run interleaves the peer and kluis, so that a slow phase of the machine hits both.
  const problems = []
  const runs = Object.fromEntries(engines.map((engine) => [engine, []]))
  for (let run = 1; run <= runCount; run++) {
    const label = runCount > 1 ? ` (run ${run} of ${runCount})` : ''
    for (const engine of engines) {
      const name = ENGINE_NAME[engine]
      const source = SOURCE[engine]
      const peerFile = join(paths.peer, `${engine}.dump.zst.gpg`)
      const results = {}
      rmSync(paths.repo, { recursive: true, force: true })
      await kluis(['init', '--config', paths.config], kluisEnv)

      results.peerBackup = await step(engine, `${name}: peer backup${label}`, async () => {
        const result = await measure(
          'bash',
          ['-c', `set -o pipefail; ${peerCommands[engine].backup(peerFile)}`],
          { env: gpgEnv, pollRss: false },
        )
        return { ...result, ...peerStats(['pb1', 'pb2', 'pb3'], 0) }
      })
      results.peerStored = statSync(peerFile).size

      const backupArgs = ['backup', '--source', source, '--config', paths.config, '--json']
      const profile = (what) => run === 1 && `${engine}-${what}`
      results.backup = await step(engine, `${name}: kluis backup${label}`, () =>
        kluisStep(engine, backupArgs, profile('backup')),
      )
      const first = JSON.parse(results.backup.stdout)
      results.dumpBytes = first.bytesTotal
      results.repositoryBytes = treeSize(paths.repo)

      results.backup2 = await step(engine, `${name}: kluis backup of unchanged data${label}`, () =>
        kluisStep(engine, backupArgs, profile('backup-unchanged')),
      )
      const second = JSON.parse(results.backup2.stdout)
      results.bytesAdded = second.bytesAdded
      results.dumpBytes2 = second.bytesTotal

      const kluisTarget = 'restore_kluis'
      dropDatabase(engine, kluisTarget)
      results.restore = await step(engine, `${name}: kluis restore${label}`, () =>
        kluisStep(
          engine,
          [
            'restore',
            '--source',
            source,
            '--config',
            paths.config,
            '--target',
            (engine === 'postgres' ? servers.postgres : servers.mariadb).url(kluisTarget),
            '--key',
            join('keys', 'reader.key'),
            '--json',
          ],
          profile('restore'),
        ),
      )
      progress(`${name}: checking the kluis restore`)
      compareDigest(
        'kluis restore',
        name,
        digests[engine],
        databaseDigest(engine, kluisTarget),
        problems,
      )
      dropDatabase(engine, kluisTarget)

      const peerTarget = 'restore_peer'
      dropDatabase(engine, peerTarget)
      createDatabase(engine, peerTarget)
      results.peerRestore = await step(engine, `${name}: peer restore${label}`, async () => {
        const result = await measure(
          'bash',
          ['-c', `set -o pipefail; ${peerCommands[engine].restore(peerFile, peerTarget)}`],
          { env: gpgEnv, pollRss: false },
        )
        return { ...result, ...peerStats(['pr1', 'pr2', 'pr3'], 2) }
      })
      progress(`${name}: checking the peer restore`)
      compareDigest(
        'peer restore',
        name,
        digests[engine],
        databaseDigest(engine, peerTarget),
        problems,
      )
      dropDatabase(engine, peerTarget)
      runs[engine].push(results)
      if (runCount > 1) progress(`${name} run ${run}: ${runLine(results)}`)
    }
  }

  // Median time per operation over the runs, highest peak RSS.
  const report = {
    command: `npm run bench:databases -- ${process.argv.slice(2).join(' ')}`.trim(),
    node: process.versions.node,
    machine: machine(),
    runs: runCount,
    rows: rowCount,
    measuredWith: gnuTime
      ? 'GNU time %M (ru_maxrss) and %U + %S; server CPU from /proc/<pid>/stat'
      : '/proc/<pid>/status VmHWM, polled every 50 ms (CPU times need GNU time)',
    engines: {},
    problems,
  }
  for (const engine of engines) {
    const all = runs[engine]
    const last = all[all.length - 1]
    const merged = {}
    for (const key of ['peerBackup', 'backup', 'backup2', 'peerRestore', 'restore']) {
      const pick = (field) => median(all.map((r) => r[key][field]).filter((v) => v !== undefined))
      const rss = all.map((r) => r[key].peakRss).filter((v) => v !== undefined)
      merged[key] = {
        seconds: pick('seconds'),
        allSeconds: all.map((r) => r[key].seconds),
        cpuSeconds: pick('cpuSeconds'),
        toolCpuSeconds: pick('toolCpuSeconds'),
        serverCpuSeconds: pick('serverCpuSeconds'),
        otherCpuSeconds: pick('otherCpuSeconds'),
        maxOtherCpuSeconds: Math.max(0, ...all.map((r) => r[key].otherCpuSeconds ?? 0)),
        peakRss: rss.length > 0 ? Math.max(...rss) : undefined,
      }
    }
    const dumpBytes = last.dumpBytes
    const throughput = (ours, peer) => round(peer.seconds / ours.seconds, 3)
    const cpuRatio = (ours, peer) =>
      ours.cpuSeconds === undefined || !peer.cpuSeconds
        ? null
        : round(ours.cpuSeconds / peer.cpuSeconds, 3)
    // Client and server together: what the machine spends (the server's part is the same work).
    const allCpuRatio = (ours, peer) =>
      ours.cpuSeconds === undefined || ours.serverCpuSeconds === undefined || !peer.cpuSeconds
        ? null
        : round(
            (ours.cpuSeconds + ours.serverCpuSeconds) / (peer.cpuSeconds + peer.serverCpuSeconds),
            3,
          )
    report.engines[engine] = {
      ...data[engine],
      dumpBytes,
      peer: {
        backupCommand:
          engine === 'postgres'
            ? 'pg_dump --format=custom --compress=0 DB | zstd -3 -T2 | gpg --batch --trust-model always --encrypt --recipient-file reader.asc -o FILE'
            : `mariadb-dump ${MARIADB_DUMP_FLAGS.join(' ')} DB | zstd -3 -T2 | gpg --batch --trust-model always --encrypt --recipient-file reader.asc -o FILE`,
        restoreCommand:
          engine === 'postgres'
            ? 'gpg --batch --decrypt FILE | zstd -d | pg_restore --single-transaction --exit-on-error --dbname=NEWDB'
            : 'gpg --batch --decrypt FILE | zstd -d | mariadb --max-allowed-packet=1G NEWDB',
        backup: summary(merged.peerBackup, dumpBytes),
        restore: summary(merged.peerRestore, dumpBytes),
        outputBytes: last.peerStored,
      },
      kluis: {
        backup: summary(merged.backup, dumpBytes),
        backupUnchanged: {
          ...summary(merged.backup2, dumpBytes),
          bytesAdded: last.bytesAdded,
          bytesAddedPercent: round((100 * last.bytesAdded) / dumpBytes, 3),
        },
        restore: summary(merged.restore, dumpBytes),
        repositoryBytes: last.repositoryBytes,
      },
      ratios: {
        backupThroughput: throughput(merged.backup, merged.peerBackup),
        backupCpu: cpuRatio(merged.backup, merged.peerBackup),
        backupAllCpu: allCpuRatio(merged.backup, merged.peerBackup),
        unchangedBackupThroughput: throughput(merged.backup2, merged.peerBackup),
        unchangedBackupCpu: cpuRatio(merged.backup2, merged.peerBackup),
        unchangedBackupAllCpu: allCpuRatio(merged.backup2, merged.peerBackup),
        restoreThroughput: throughput(merged.restore, merged.peerRestore),
        restoreCpu: cpuRatio(merged.restore, merged.peerRestore),
        restoreAllCpu: allCpuRatio(merged.restore, merged.peerRestore),
        storedSize: round(last.repositoryBytes / last.peerStored, 3),
      },
    }
  }
  report.totalSeconds = round((performance.now() - started) / 1000, 1)
  report.ok = problems.length === 0
  report.profiled = Boolean(cpuProfDir)
  printTable(report)
  if (cpuProfDir) printProfiles(cpuProfDir, out)
  if (args.values.json) console.log(JSON.stringify(report, null, 2))
  if (problems.length > 0) throw new BenchFailure(`\n  ${problems.join('\n  ')}`)
  out('\nall checks passed: restored databases have the original row counts and checksums')
}

function writeWrappers(dir, tools, timeFile) {
  mkdirSync(dir, { recursive: true })
  for (const [name, real] of tools) {
    const script = gnuTime
      ? `#!/bin/sh\nexec ${gnuTime} -a -o ${sh(timeFile)} -f '${TIME_FORMAT}' ${sh(real)} "$@"\n`
      : `#!/bin/sh\nexec ${sh(real)} "$@"\n`
    writeFileSync(join(dir, name), script, { mode: 0o755 })
  }
}

function median(values) {
  if (values.length === 0) return undefined
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]
}

function runLine(r) {
  const ratio = (a, b) => (b.seconds / a.seconds).toFixed(2)
  return (
    `backup ${r.backup.seconds.toFixed(2)} s vs peer ${r.peerBackup.seconds.toFixed(2)} s ` +
    `(${ratio(r.backup, r.peerBackup)}×), unchanged ${r.backup2.seconds.toFixed(2)} s, ` +
    `restore ${r.restore.seconds.toFixed(2)} s vs peer ${r.peerRestore.seconds.toFixed(2)} s ` +
    `(${ratio(r.restore, r.peerRestore)}×), dump ${formatBytes(r.dumpBytes)}`
  )
}

function summary(result, dumpBytes) {
  const value = (v, digits) => (v === undefined ? null : round(v, digits))
  return {
    seconds: round(result.seconds, 3),
    ...(result.allSeconds?.length > 1 ? { runs: result.allSeconds.map((s) => round(s, 3)) } : {}),
    mbPerSecond: round(dumpBytes / result.seconds / MB, 1),
    cpuSeconds: value(result.cpuSeconds, 2),
    toolCpuSeconds: value(result.toolCpuSeconds, 2),
    serverCpuSeconds: value(result.serverCpuSeconds, 2),
    // CPU time of everything else on the machine during the step (median; highest of the runs).
    otherCpuSeconds: value(result.otherCpuSeconds, 2),
    ...(result.allSeconds?.length > 1
      ? { maxOtherCpuSeconds: value(result.maxOtherCpuSeconds, 2) }
      : {}),
    peakRssMB: result.peakRss === undefined ? null : round(result.peakRss / MB, 1),
  }
}

function treeSize(directory) {
  let total = 0
  for (const entry of readdirSync(directory, { recursive: true, withFileTypes: true })) {
    if (entry.isFile()) total += statSync(join(entry.parentPath, entry.name)).size
  }
  return total
}

// ---------------------------------------------------------------------------------------------
// Running and measuring child processes

/** Runs dist/cli.js with the Node that runs this script (the pinned Node 24 under npm). */
async function kluis(cliArgs, env = cleanEnv(), profile = undefined) {
  const nodeArgs = []
  if (profile && cpuProfDir) {
    mkdirSync(join(cpuProfDir, profile), { recursive: true })
    nodeArgs.push('--cpu-prof', `--cpu-prof-dir=${join(cpuProfDir, profile)}`)
  }
  return measure(process.execPath, [...nodeArgs, cli, ...cliArgs], { env })
}

let measureCount = 0

/** Runs a command in the bench folder, measured (see measureProcess in bench-lib.mjs). */
function measure(command, commandArgs, { env = process.env, pollRss = true } = {}) {
  return measureProcess(command, commandArgs, {
    cwd: root,
    env,
    pollRss,
    gnuTime,
    timeFile: join(paths.measure, `rss-${++measureCount}`),
    failure: (message) => new BenchFailure(message),
    onChild: (child) => {
      running.add(child)
      child.on('close', () => running.delete(child))
    },
  })
}

/**
 * Before a timed step: dirty pages written out, by the OS and by the server, so that no step
 * pays for the previous one's writeback.
 */
function settle(engine) {
  if (engine === 'postgres') psql('postgres', 'CHECKPOINT')
  else {
    // InnoDB flushes its dirty pages when asked to keep none.
    mariadb('', 'SET GLOBAL innodb_max_dirty_pages_pct = 0')
    for (let i = 0; ; i++) {
      const dirty = Number(
        mariadb('', "SHOW GLOBAL STATUS LIKE 'Innodb_buffer_pool_pages_dirty'").split('\t')[1],
      )
      if (!(dirty > 0)) break
      if (i === 600) {
        progress(`warning: MariaDB still has ${dirty} dirty pages after a minute; going on`)
        break
      }
      spawnSync('sleep', ['0.1'], { stdio: 'ignore' })
    }
    mariadb('', 'SET GLOBAL innodb_max_dirty_pages_pct = 90')
  }
  spawnSync('sync', { stdio: 'ignore' })
}

/** The sum over every line GNU time appended (-a): one per tool kluis ran. */
function sumTimeFile(file) {
  let cpuSeconds = 0
  let peakRss = 0
  for (const line of readFileSyncSafe(file).split('\n')) {
    const match = /^(\d+) ([\d.]+) ([\d.]+)$/.exec(line.trim())
    if (!match) continue
    cpuSeconds += Number(match[2]) + Number(match[3])
    peakRss = Math.max(peakRss, Number(match[1]) * 1024)
  }
  return { cpuSeconds, peakRss }
}

// ---------------------------------------------------------------------------------------------
// Output

function machine() {
  const model = /^model name\s*:\s*(.+)$/m.exec(readFileSyncSafe('/proc/cpuinfo'))?.[1]
  return {
    nproc: availableParallelism(),
    cpu: model ?? cpus()[0]?.model ?? 'unknown',
    memoryGB: round(
      Number(/^MemTotal:\s+(\d+)/m.exec(readFileSyncSafe('/proc/meminfo'))?.[1] ?? 0) / 1e6,
      1,
    ),
    gpg: spawnSync('gpg', ['--version'], { encoding: 'utf8' }).stdout.split('\n')[0],
    zstd: spawnSync('zstd', ['--version'], { encoding: 'utf8' }).stdout.trim(),
  }
}

/** A ratio as "0.53×"; "n/a" when a run too short to measure left it empty. */
function times(ratio) {
  return typeof ratio === 'number' ? `${ratio.toFixed(2)}×` : 'n/a'
}

function printTable(report) {
  const num = (value, digits) =>
    value === null || value === undefined ? '-' : value.toFixed(digits)
  const ratio = (value) => (value === null || value === undefined ? '' : `${value.toFixed(2)}×`)
  const header = [
    'Step',
    'Seconds',
    'MB/s',
    'CPU s',
    'tool CPU s',
    'server CPU s',
    'Peak RSS MB',
    'Speed vs peer',
    'CPU vs peer',
    'with server',
  ]
  const rows = []
  const row = (label, m, speed, cpu, allCpu) => [
    label,
    num(m.seconds, 2),
    num(m.mbPerSecond, 0),
    num(m.cpuSeconds, 1),
    num(m.toolCpuSeconds, 1),
    num(m.serverCpuSeconds, 1),
    num(m.peakRssMB, 0),
    ratio(speed),
    ratio(cpu),
    ratio(allCpu),
  ]
  for (const [engine, e] of Object.entries(report.engines)) {
    const dumpTool = engine === 'postgres' ? 'pg_dump' : 'mariadb-dump'
    const restoreTool = engine === 'postgres' ? 'pg_restore' : 'mariadb'
    const r = e.ratios
    rows.push([`${e.server}: ${formatBytes(e.dumpBytes)} dump`, ...header.slice(1).map(() => '')])
    rows.push(row(`  peer backup (${dumpTool} | zstd | gpg -e)`, e.peer.backup, 1, 1, 1))
    rows.push(
      row('  kluis backup', e.kluis.backup, r.backupThroughput, r.backupCpu, r.backupAllCpu),
    )
    rows.push(
      row(
        '  kluis backup, unchanged data',
        e.kluis.backupUnchanged,
        r.unchangedBackupThroughput,
        r.unchangedBackupCpu,
        r.unchangedBackupAllCpu,
      ),
    )
    rows.push(row(`  peer restore (gpg -d | zstd -d | ${restoreTool})`, e.peer.restore, 1, 1, 1))
    rows.push(
      row('  kluis restore', e.kluis.restore, r.restoreThroughput, r.restoreCpu, r.restoreAllCpu),
    )
  }
  const widths = header.map((_, i) => Math.max(header[i].length, ...rows.map((r) => r[i].length)))
  const line = (cells) =>
    cells
      .map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i])))
      .join('  ')
      .trimEnd()
  out('')
  out(
    `kluis bench-databases: ${report.rows.toLocaleString('en')} rows per engine ` +
      `(customers 5 %, orders 25 %, events 68 %, attachments 2 %)`,
  )
  out(
    `machine: ${report.machine.nproc} CPUs, ${report.machine.cpu}; Node ${report.node}; ${report.machine.gpg}`,
  )
  out(
    `measured with ${report.measuredWith}; CPU s = client processes (the peer's 3, or node and ` +
      "the tools it runs), tool CPU s = the dump/restore tools among them; the peer's RSS is summed",
  )
  if (report.runs > 1) out(`times: median of ${report.runs} runs; peak RSS: highest of the runs`)
  if (report.profiled)
    out('NOTE: kluis ran with --cpu-prof in run 1: its times include profiling overhead')
  out('')
  out(line(header))
  out(widths.map((w) => '-'.repeat(w)).join('  '))
  for (const r of rows) out(line(r))
  out('')
  for (const [engine, e] of Object.entries(report.engines)) {
    const name = ENGINE_NAME[engine]
    out(
      `${name}: throughput kluis / peer: backup ${times(e.ratios.backupThroughput)}, ` +
        `unchanged ${times(e.ratios.unchangedBackupThroughput)}, restore ${times(e.ratios.restoreThroughput)}` +
        (e.ratios.backupCpu === null
          ? ''
          : `; CPU kluis / peer: backup ${times(e.ratios.backupCpu)}, restore ${times(e.ratios.restoreCpu)}`),
    )
    out(
      `${name}: stored: kluis repository ${formatBytes(e.kluis.repositoryBytes)}, peer ` +
        `${formatBytes(e.peer.outputBytes)} (${e.ratios.storedSize.toFixed(3)}×; dump ${formatBytes(e.dumpBytes)}, ` +
        `on the server ${formatBytes(e.databaseBytes)}); unchanged backup added ` +
        `${formatBytes(e.kluis.backupUnchanged.bytesAdded)} (${e.kluis.backupUnchanged.bytesAddedPercent.toFixed(2)} % of the dump)`,
    )
  }
  const others = Object.values(report.engines).flatMap((e) =>
    [e.peer.backup, e.kluis.backup, e.kluis.backupUnchanged, e.peer.restore, e.kluis.restore].map(
      (m) => m.maxOtherCpuSeconds ?? m.otherCpuSeconds ?? 0,
    ),
  )
  out(
    `other processes on the machine used up to ${Math.max(...others).toFixed(1)} CPU s during a ` +
      'timed step (kernel work for our I/O included): more than a second or so means a noisy run',
  )
  out(`total time of the bench: ${report.totalSeconds.toFixed(0)} s`)
  if (report.problems.length > 0) out('RESTORE VERIFICATION FAILED (details below)')
  else out('restores verified: row counts and per-table checksums match (kluis and peer)')
}

function lastLines(text, count = 30) {
  return text.trimEnd().split('\n').slice(-count).join('\n')
}

function listDir(dir) {
  try {
    return readdirSync(dir)
  } catch {
    return []
  }
}

function isExecutable(file) {
  try {
    return (statSync(file).mode & 0o111) !== 0
  } catch {
    return false
  }
}

// ---------------------------------------------------------------------------------------------
// Main (last: the classes above must be initialized first)

try {
  await run()
} catch (error) {
  process.stderr.write(
    `bench-databases: FAILED: ${error instanceof BenchFailure ? error.message : (error?.stack ?? error)}\n`,
  )
  process.exitCode = 1
} finally {
  await stopPostgres().catch(() => undefined)
  await stopMariadb().catch(() => undefined)
  cleanup()
}
