// Benchmark: kluis backup and restore against `tar | zstd -3 -T2 | gpg --encrypt` on the same
// generated data, in the same run. Absolute speeds differ between machines, so the figures that
// matter are the ratios to the peer measured here.
//
//   npm run build && npm run bench -- [SIZE] [--runs N] [--dir DIR] [--seed N] [--json] [--keep]
//                                        [--storage local|s3|azure] [--cpu-prof DIR]
//                                        [--peak-rss-limit MB] [--no-gnu-time]
//
// SIZE: bytes of generated data, with an optional binary unit: 256M, 1G, 512MiB (default 1G).
// --storage: where kluis's repository lives. local (default): a folder. s3: s3rver, azure:
// Azurite's blob service, both from node_modules, on 127.0.0.1 with their data in the bench's
// temporary folder, a fresh repository prefix per run. The peer always writes a local file, so
// with s3/azure the ratios include kluis's protocol cost (and the server's CPU, which shares the
// machine). The repository size of s3/azure is the sum of the listed objects' sizes.
// Exit codes: 0 ok, 1 a check failed (peak RSS over the limit, restored data differs, a step
// failed), 2 bad usage or a missing tool.
import { spawn, spawnSync } from 'node:child_process'
import { createCipheriv, createHash } from 'node:crypto'
import {
  closeSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
  writeSync,
} from 'node:fs'
import { availableParallelism, cpus, tmpdir } from 'node:os'
import { dirname, join, relative, resolve } from 'node:path'
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

const usage = `Usage: npm run bench -- [SIZE] [options]

  SIZE                 data to generate, e.g. 256M, 1G, 512MiB (binary units; default 1G)
  --dir DIR            parent folder for the temporary data (default: ${tmpdir()})
  --seed N             seed of the generated data (default 1)
  --json               print the results as JSON on stdout (the table goes to stderr)
  --runs N             repeat the timed steps N times (peer and kluis interleaved) and report
                       the median time and the highest peak RSS (default 1)
  --storage KIND       where kluis's repository lives: local (a folder, the default), s3
                       (s3rver) or azure (Azurite), the servers from node_modules on 127.0.0.1;
                       the peer always writes a local file
  --keep               keep the temporary folder (with s3/azure, the server's data too)
  --cpu-prof DIR       run kluis with --cpu-prof, write the profiles to DIR and print the
                       hottest functions (profiling slows kluis down: ratios are not comparable)
  --peak-rss-limit MB  fail when the backup's peak RSS exceeds this (default 300)
  --no-gnu-time        measure peak RSS by polling /proc even when GNU time is installed`

let args
try {
  args = parseArgs({
    allowPositionals: true,
    options: {
      dir: { type: 'string' },
      seed: { type: 'string', default: '1' },
      json: { type: 'boolean', default: false },
      keep: { type: 'boolean', default: false },
      'cpu-prof': { type: 'string' },
      'peak-rss-limit': { type: 'string', default: '300' },
      'no-gnu-time': { type: 'boolean', default: false },
      runs: { type: 'string', default: '1' },
      storage: { type: 'string', default: 'local' },
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
const requestedSize = parseSize(args.positionals[0] ?? '1G')
const seed = args.values.seed
const rssLimitMB = Number(args.values['peak-rss-limit'])
if (!(rssLimitMB > 0)) usageError(`--peak-rss-limit must be a positive number of MB`)
const runCount = Number(args.values.runs)
if (!Number.isInteger(runCount) || runCount < 1) usageError('--runs must be a positive integer')
const storageKind = args.values.storage
if (!['local', 's3', 'azure'].includes(storageKind))
  usageError(`--storage must be local, s3 or azure, not '${storageKind}'`)
const cpuProfDir = args.values['cpu-prof'] ? resolve(args.values['cpu-prof']) : undefined
// Human output goes to stderr when stdout carries JSON.
const out = args.values.json ? (text) => process.stderr.write(`${text}\n`) : console.log
const progress = (text) => process.stderr.write(`bench: ${text}\n`)

function usageError(message) {
  process.stderr.write(`bench: ${message}\n\n${usage}\n`)
  process.exit(2)
}

function parseSize(text) {
  const match = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?$/i.exec(text.trim())
  if (!match) usageError(`cannot read size '${text}' (expected e.g. 256M or 1G)`)
  const power = ' kmgt'.indexOf(match[2].toLowerCase() || ' ')
  const bytes = Math.round(Number(match[1]) * 1024 ** power)
  if (bytes < 16 * MiB) usageError(`size ${text} is too small: use at least 16M`)
  return bytes
}

// ---------------------------------------------------------------------------------------------
// Preconditions

const [major, minor] = process.versions.node.split('.').map(Number)
if (major < 22 || (major === 22 && minor < 16)) {
  process.stderr.write(
    `bench: Node ${process.versions.node} is too old (node:sqlite, zstd): run it through npm ` +
      '(`npm run bench`), which puts the pinned Node 24 first on PATH\n',
  )
  process.exit(2)
}
if (major < 24) progress(`warning: Node ${process.versions.node}; the project pins Node 24`)
if (!existsSync(cli)) {
  process.stderr.write(`bench: ${relative(process.cwd(), cli)} is missing: run \`npm run build\`\n`)
  process.exit(2)
}
const serverScripts = {
  s3: join(projectRoot, 'node_modules', 's3rver', 'bin', 's3rver.js'),
  azure: join(projectRoot, 'node_modules', 'azurite', 'dist', 'src', 'blob', 'main.js'),
}
if (storageKind !== 'local' && !existsSync(serverScripts[storageKind])) {
  process.stderr.write(
    `bench: ${relative(process.cwd(), serverScripts[storageKind])} is missing: run \`npm install\`\n`,
  )
  process.exit(2)
}
for (const tool of ['tar', 'zstd', 'gpg', 'bash']) {
  if (spawnSync(tool, ['--version'], { stdio: 'ignore' }).status !== 0) {
    process.stderr.write(`bench: '${tool}' is needed for the peer pipeline\n`)
    process.exit(2)
  }
}
// GNU time reports the exact peak RSS (ru_maxrss) of what it runs; else poll /proc.
const gnuTime = findGnuTime(args.values['no-gnu-time'])

const { DatabaseSync } = await import('node:sqlite')

// ---------------------------------------------------------------------------------------------
// Temporary folder and cleanup

const parent = resolve(args.values.dir ?? tmpdir())
mkdirSync(parent, { recursive: true })
const root = mkdtempSync(join(parent, 'kluis-bench-'))
const paths = {
  data: join(root, 'data'),
  database: join(root, 'data', 'app.sqlite'),
  files: join(root, 'data', 'files'),
  keys: join(root, 'keys'),
  config: join(root, 'kluis.yml'),
  repo: join(root, 'repo'),
  tmp: join(root, 'tmp'),
  restore: join(root, 'restore'),
  peer: join(root, 'peer'),
  peerOut: join(root, 'peer', 'out.tar.zst.gpg'),
  gnupg: join(root, 'peer', 'gnupg'),
  peerRestore: join(root, 'peer', 'restore'),
  measure: join(root, 'measure'),
  server: join(root, 'server'),
}
/** The s3rver or Azurite process of --storage s3|azure, once started. */
let server
let cleaned = false
function cleanup() {
  if (cleaned) return
  cleaned = true
  // A server still running (Ctrl-C, a failure): kill it before removing its folder.
  if (server) {
    server.child.kill('SIGKILL')
    if (!args.values.keep) rmSync(server.dir, { recursive: true, force: true, maxRetries: 3 })
  }
  // Decrypting started a gpg-agent for the temporary GNUPGHOME: stop it.
  if (existsSync(paths.gnupg)) {
    spawnSync('gpgconf', ['--kill', 'gpg-agent'], {
      env: { ...process.env, GNUPGHOME: paths.gnupg },
      stdio: 'ignore',
    })
  }
  if (args.values.keep) progress(`kept ${root}`)
  else rmSync(root, { recursive: true, force: true })
}
process.on('exit', cleanup)
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    cleanup()
    process.exit(130)
  })
}

class BenchFailure extends Error {}

// ---------------------------------------------------------------------------------------------
// The run

async function run() {
  for (const dir of [paths.data, paths.files, paths.tmp, paths.peer, paths.measure])
    mkdirSync(dir, { recursive: true })
  mkdirSync(paths.gnupg, { mode: 0o700 })

  progress(`generating ${formatBytes(requestedSize)} of data (seed ${seed}) in ${paths.data}`)
  const started = performance.now()
  const generated = generateData(requestedSize)
  const generateSeconds = (performance.now() - started) / 1000
  const dataBytes = generated.databaseBytes + generated.filesBytes
  progress(
    `generated ${formatBytes(dataBytes)} in ${generateSeconds.toFixed(1)} s: database ` +
      `${formatBytes(generated.databaseBytes)} (${generated.rows} rows), ` +
      `${generated.fileCount} files ${formatBytes(generated.filesBytes)}`,
  )
  progress('hashing the original data (for the restore checks)')
  const original = {
    files: treeHash(paths.files),
    database: databaseDigest(paths.database),
  }

  // kluis setup (not timed)
  await kluis(['keys', 'generate', '--out', 'keys'])
  if (storageKind !== 'local') {
    progress(`starting ${storageKind === 's3' ? 's3rver' : 'Azurite (blob)'} in ${paths.server}`)
    server = await startServer(storageKind)
    progress(`${server.name} listens on ${server.endpoint}`)
  }
  const writeConfig = (repository) =>
    writeFileSync(
      paths.config,
      [
        `repository: ${repository}`,
        ...(server?.storageConfig ?? []),
        'keys:',
        '  readers: [keys/reader.asc]',
        '  writer: keys/writer.key',
        '  writer-public: keys/writer.asc',
        'sources:',
        '  - name: database',
        '    type: sqlite',
        '    path: data/app.sqlite',
        '  - name: files',
        '    type: files',
        '    path: data/files',
        '',
      ].join('\n'),
    )

  // peer setup (not timed)
  const gpgEnv = { ...process.env, GNUPGHOME: paths.gnupg }
  await measure(
    'bash',
    ['-c', `gpg --batch --quiet --import ${sh(join(paths.keys, 'reader.key'))}`],
    {
      env: gpgEnv,
      pollRss: false,
    },
  )
  const stage = (name) =>
    gnuTime ? `${gnuTime} -f '${TIME_FORMAT}' -o ${sh(join(paths.measure, name))} ` : ''
  // The peer's figures: peak RSS and CPU time summed over its three processes.
  const peerStats = (names) => {
    if (!gnuTime) return { peakRss: undefined, cpuSeconds: undefined }
    const stats = names.map((name) => readTimeFile(join(paths.measure, name)))
    return {
      peakRss: stats.reduce((sum, s) => sum + s.peakRss, 0),
      cpuSeconds: stats.reduce((sum, s) => sum + s.cpuSeconds, 0),
    }
  }

  // Each run interleaves the peer and kluis, so that a slow phase of the machine hits both.
  const problems = []
  const runs = []
  for (let run = 1; run <= runCount; run++) {
    const label = runCount > 1 ? ` (run ${run} of ${runCount})` : ''
    const results = {}
    // Local: the same folder, emptied. s3/azure: a new prefix in the same bucket or container.
    const prefix = `repo-${run}`
    if (server) writeConfig(`${server.scheme}://${BUCKET}/${prefix}`)
    else {
      rmSync(paths.repo, { recursive: true, force: true })
      writeConfig('file://./repo')
    }
    await kluis(['init'])

    settle()
    progress(`peer backup: tar | zstd -3 -T2 | gpg --encrypt${label}`)
    results.peerBackup = await measure(
      'bash',
      [
        '-c',
        'set -o pipefail; ' +
          `${stage('pb1')}tar -cf - -C ${sh(paths.data)} . | ` +
          `${stage('pb2')}zstd -3 -T2 -q -c | ` +
          `${stage('pb3')}gpg --batch --yes --trust-model always --encrypt ` +
          `--recipient-file ${sh(join(paths.keys, 'reader.asc'))} -o ${sh(paths.peerOut)}`,
      ],
      { env: gpgEnv, pollRss: false },
    )
    Object.assign(results.peerBackup, peerStats(['pb1', 'pb2', 'pb3']))
    results.peerStored = statSync(paths.peerOut).size

    settle()
    progress(`kluis backup${label}`)
    const serverBefore = server ? treeSize(server.dir) : 0
    results.backup = await kluis(['backup', '--json'], { profile: run === 1 && 'backup' })
    if (server) {
      results.repositoryBytes = await server.objectBytes(`${prefix}/`)
      results.serverFolderGrowth = treeSize(server.dir) - serverBefore
    } else results.repositoryBytes = treeSize(paths.repo)

    settle()
    progress(`kluis backup of unchanged data${label}`)
    results.backup2 = await kluis(['backup', '--json'], {
      profile: run === 1 && 'backup-unchanged',
    })
    results.bytesAdded = JSON.parse(results.backup2.stdout).bytesAdded

    settle()
    progress(`kluis restore${label}`)
    results.restore = await kluis(
      ['restore', '--target', paths.restore, '--key', join('keys', 'reader.key'), '--json'],
      { profile: run === 1 && 'restore' },
    )
    progress('checking the kluis restore')
    compareRestore(
      'kluis',
      join(paths.restore, 'files'),
      join(paths.restore, 'database', 'app.sqlite'),
      original,
      problems,
    )
    rmSync(paths.restore, { recursive: true, force: true })

    settle()
    progress(`peer restore: gpg --decrypt | zstd -d | tar -x${label}`)
    mkdirSync(paths.peerRestore)
    results.peerRestore = await measure(
      'bash',
      [
        '-c',
        'set -o pipefail; ' +
          `${stage('pr1')}gpg --batch --quiet --decrypt ${sh(paths.peerOut)} | ` +
          `${stage('pr2')}zstd -d -q -c | ` +
          `${stage('pr3')}tar -xf - -C ${sh(paths.peerRestore)}`,
      ],
      { env: gpgEnv, pollRss: false },
    )
    Object.assign(results.peerRestore, peerStats(['pr1', 'pr2', 'pr3']))
    progress('checking the peer restore')
    compareRestore(
      'peer',
      join(paths.peerRestore, 'files'),
      join(paths.peerRestore, 'app.sqlite'),
      original,
      problems,
    )
    rmSync(paths.peerRestore, { recursive: true, force: true })
    runs.push(results)
    if (runCount > 1) progress(`run ${run}: ${runLine(results, dataBytes)}`)
  }
  // Median time per operation over the runs, highest peak RSS.
  const results = {}
  const median = (values) => {
    const known = values.filter((v) => v !== undefined).sort((a, b) => a - b)
    return known.length > 0 ? known[Math.floor(known.length / 2)] : undefined
  }
  for (const key of ['backup', 'backup2', 'restore', 'peerBackup', 'peerRestore']) {
    const rss = runs.map((r) => r[key].peakRss).filter((v) => v !== undefined)
    results[key] = {
      seconds: median(runs.map((r) => r[key].seconds)),
      cpuSeconds: median(runs.map((r) => r[key].cpuSeconds)),
      serverCpuSeconds: median(runs.map((r) => r[key].serverCpuSeconds)),
      allSeconds: runs.map((r) => r[key].seconds),
      peakRss: rss.length > 0 ? Math.max(...rss) : undefined,
    }
  }
  const last = runs[runs.length - 1]

  // Report
  const rate = (r) => dataBytes / r.seconds
  const report = {
    command: `npm run bench -- ${process.argv.slice(2).join(' ')}`.trim(),
    node: process.versions.node,
    machine: machine(),
    seed,
    runs: runCount,
    storage: {
      kind: storageKind,
      server: server ? `${server.name} ${server.version} at ${server.endpoint}` : null,
      repository: server ? `${server.scheme}://${BUCKET}/repo-<run>` : 'file://./repo',
      repositoryBytesMethod: server
        ? "sum of the sizes of the objects listed under the run's prefix"
        : 'sum of the sizes of the files in the repository folder',
      // What the server's data folder grew by during the first backup (objects + its metadata).
      serverFolderGrowthBytes: server ? last.serverFolderGrowth : null,
      // kluis's Node talks to a server on the same machine, which takes CPU from kluis and the
      // peer's time (serverCpuSeconds per kluis step); the peer writes a local file.
      note: server
        ? 'the peer writes a local file: the ratios include the protocol cost and the local server'
        : null,
    },
    data: {
      requestedBytes: requestedSize,
      bytes: dataBytes,
      databaseBytes: generated.databaseBytes,
      databaseRows: generated.rows,
      filesBytes: generated.filesBytes,
      fileCount: generated.fileCount,
      generateSeconds: round(generateSeconds, 2),
    },
    peakRssMethod: gnuTime
      ? 'GNU time %M (ru_maxrss); CPU s = user + system (%U + %S)'
      : '/proc/<pid>/status VmHWM, polled every 50 ms (CPU times need GNU time)',
    kluis: {
      backup: summary(results.backup, dataBytes),
      backupUnchanged: {
        ...summary(results.backup2, dataBytes),
        bytesAdded: last.bytesAdded,
        bytesAddedPercent: round((100 * last.bytesAdded) / dataBytes, 3),
      },
      restore: summary(results.restore, dataBytes),
      repositoryBytes: last.repositoryBytes,
      storedRatio: round(last.repositoryBytes / dataBytes, 3),
    },
    peer: {
      backupCommand:
        'tar -cf - -C DATA . | zstd -3 -T2 | gpg --batch --trust-model always --encrypt --recipient-file reader.asc -o out.gpg',
      restoreCommand: 'gpg --batch --decrypt out.gpg | zstd -d | tar -xf - -C DIR',
      backup: summary(results.peerBackup, dataBytes),
      restore: summary(results.peerRestore, dataBytes),
      outputBytes: last.peerStored,
      storedRatio: round(last.peerStored / dataBytes, 3),
    },
    ratios: {
      backupThroughput: round(rate(results.backup) / rate(results.peerBackup), 3),
      restoreThroughput: round(rate(results.restore) / rate(results.peerRestore), 3),
      unchangedBackupThroughput: round(rate(results.backup2) / rate(results.peerBackup), 3),
      // CPU seconds (user + system) of kluis per CPU second of the peer: steadier than wall time
      // on a shared machine. Null without GNU time.
      backupCpu: cpuRatio(results.backup, results.peerBackup),
      restoreCpu: cpuRatio(results.restore, results.peerRestore),
    },
    peakRssLimitMB: rssLimitMB,
    verified: problems.length === 0,
    problems,
    profiled: Boolean(cpuProfDir),
  }
  printTable(report)
  if (cpuProfDir) printProfiles(cpuProfDir, out)

  const failures = [...problems]
  const backupRssMB = round(results.backup.peakRss / MB, 1)
  if (!(backupRssMB <= rssLimitMB)) {
    failures.push(
      `peak RSS of the backup was ${backupRssMB.toFixed(0)} MB, over the limit of ${rssLimitMB} MB ` +
        `(for ${formatBytes(dataBytes)} of data): memory must stay flat whatever the size of the data`,
    )
  }
  const restoreRssMB = round(results.restore.peakRss / MB, 1)
  if (restoreRssMB > rssLimitMB) {
    out(
      `warning: peak RSS of the restore was ${restoreRssMB.toFixed(0)} MB (over ${rssLimitMB} MB)`,
    )
  }
  report.ok = failures.length === 0
  if (args.values.json) console.log(JSON.stringify(report, null, 2))
  if (failures.length > 0) throw new BenchFailure(`\n  ${failures.join('\n  ')}`)
  out('\nall checks passed: restored data identical, peak RSS within the limit')
}

function cpuRatio(ours, peer) {
  return ours.cpuSeconds === undefined || !peer.cpuSeconds
    ? null
    : round(ours.cpuSeconds / peer.cpuSeconds, 3)
}

function runLine(r, dataBytes) {
  const ratio = (a, b) => (b.seconds / a.seconds).toFixed(2)
  return (
    `backup ${r.backup.seconds.toFixed(2)} s vs peer ${r.peerBackup.seconds.toFixed(2)} s ` +
    `(${ratio(r.backup, r.peerBackup)}×), restore ${r.restore.seconds.toFixed(2)} s vs peer ` +
    `${r.peerRestore.seconds.toFixed(2)} s (${ratio(r.restore, r.peerRestore)}×), ` +
    `${(r.backup.peakRss / MB).toFixed(0)} MB peak RSS, ${formatBytes(dataBytes)}`
  )
}

function summary(result, dataBytes) {
  return {
    seconds: round(result.seconds, 3),
    ...(result.allSeconds?.length > 1 ? { runs: result.allSeconds.map((s) => round(s, 3)) } : {}),
    mbPerSecond: round(dataBytes / result.seconds / MB, 1),
    peakRssMB: result.peakRss === undefined ? null : round(result.peakRss / MB, 1),
    cpuSeconds: result.cpuSeconds === undefined ? null : round(result.cpuSeconds, 2),
    ...(result.serverCpuSeconds === undefined
      ? {}
      : { serverCpuSeconds: round(result.serverCpuSeconds, 2) }),
  }
}

function compareRestore(who, filesDir, databaseFile, original, problems) {
  if (!existsSync(filesDir)) {
    problems.push(`${who}: restored files folder ${filesDir} is missing`)
  } else {
    const files = treeHash(filesDir)
    if (files.sha256 !== original.files.sha256) {
      problems.push(
        `${who}: restored files differ from the original (${files.count} files, ${files.bytes} bytes, ` +
          `sha256 ${files.sha256.slice(0, 16)}; original ${original.files.count} files, ` +
          `${original.files.bytes} bytes, sha256 ${original.files.sha256.slice(0, 16)})`,
      )
    }
  }
  if (!existsSync(databaseFile)) {
    problems.push(`${who}: restored database ${databaseFile} is missing`)
    return
  }
  const database = databaseDigest(databaseFile)
  for (const [table, rows] of Object.entries(original.database.rows)) {
    if (database.rows[table] !== rows)
      problems.push(
        `${who}: table ${table} has ${database.rows[table]} rows after restore, originally ${rows}`,
      )
  }
  if (database.sha256 !== original.database.sha256)
    problems.push(`${who}: restored database content differs from the original`)
}

// ---------------------------------------------------------------------------------------------
// Running and measuring child processes

/** Runs dist/cli.js with the Node that runs this script (the pinned Node 24 under npm). */
async function kluis(cliArgs, { profile } = {}) {
  const nodeArgs = []
  if (profile && cpuProfDir) {
    mkdirSync(join(cpuProfDir, profile), { recursive: true })
    nodeArgs.push('--cpu-prof', `--cpu-prof-dir=${join(cpuProfDir, profile)}`)
  }
  const cpuBefore = server?.cpuSeconds()
  const result = await measure(process.execPath, [...nodeArgs, cli, ...cliArgs], {
    env: { ...process.env, KLUIS_TMPDIR: paths.tmp, ...server?.env },
  })
  // The server's CPU time during the step: with kluis's, whether the server held it back.
  if (server) result.serverCpuSeconds = server.cpuSeconds() - cpuBefore
  return result
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
  })
}

/**
 * Writes dirty pages out before a timed step, so that no step pays for the previous one's
 * writeback (the generated data, the repository, restored files).
 */
function settle() {
  spawnSync('sync', { stdio: 'ignore' })
}

// ---------------------------------------------------------------------------------------------
// Storage servers (--storage s3|azure)

/** The S3 bucket or Azure container; each run's repository is a prefix in it. */
const BUCKET = 'kluis-bench'
/** Azurite's well-known development account (public, documented by Microsoft). */
const AZURITE_ACCOUNT = 'devstoreaccount1'
const AZURITE_KEY =
  'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
const CLOCK_TICKS =
  Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout?.trim()) || 100
/**
 * Loaded before the server's script: the server exits when its stdin, a pipe from this process,
 * closes, so not even a bench killed outright (SIGKILL) leaves a server behind.
 */
const exitWithParent = `data:text/javascript,${encodeURIComponent(
  'const bye = () => process.exit(0); process.stdin.on("end", bye).on("error", bye).resume()',
)}`

/**
 * Starts s3rver or Azurite's blob service under this Node (not npx, whose killing would orphan
 * the server) on 127.0.0.1 and a free port (port 0: the server prints the one it got), with its
 * data in the bench's folder. s3rver needs --openssl-legacy-provider (else ListObjectsV2 paging
 * answers 500); it knows one key id, S3RVER, and accepts any secret.
 */
async function startServer(kind) {
  const s3 = kind === 's3'
  mkdirSync(paths.server, { recursive: true })
  const child = spawn(
    process.execPath,
    [
      ...(s3 ? ['--openssl-legacy-provider'] : []),
      '--import',
      exitWithParent,
      serverScripts[kind],
      ...(s3
        ? ['-d', paths.server, '-a', '127.0.0.1', '-p', '0', '--silent']
        : [
            '--blobHost',
            '127.0.0.1',
            '--blobPort',
            '0',
            '-l',
            paths.server,
            '--silent',
            '--disableTelemetry',
            '--skipApiVersionCheck',
          ]),
    ],
    { cwd: root, stdio: ['pipe', 'pipe', 'pipe'] },
  )
  // Known to cleanup() from now on, so that even a server that never gets ready is killed.
  server = { child, dir: paths.server }
  const name = s3 ? 's3rver' : 'Azurite'
  const packageFile = join(projectRoot, 'node_modules', s3 ? 's3rver' : 'azurite', 'package.json')
  const { version } = JSON.parse(readFileSync(packageFile, 'utf8'))
  let output = ''
  const address = await new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => fail('did not start within 30 s'), 30_000)
    const fail = (why) => {
      clearTimeout(timer)
      reject(new BenchFailure(`${name} ${why}\n${output.slice(-4000)}`))
    }
    const read = (piece) => {
      output = (output + piece.toString()).slice(-8000)
      const found = s3
        ? /listening on [^\s:]+:(\d+)/.exec(output)?.[1]
        : /successfully listens on http:\/\/127\.0\.0\.1:(\d+)/.exec(output)?.[1]
      if (found) {
        clearTimeout(timer)
        resolvePromise(`http://127.0.0.1:${found}`)
      }
    }
    child.stdout.on('data', read)
    child.stderr.on('data', (piece) => {
      output = (output + piece.toString()).slice(-8000)
    })
    child.once('error', (error) => fail(`could not be started: ${error.message}`))
    child.once('exit', (code, signal) => fail(`exited (${signal ?? code}) before listening`))
  })
  const endpoint = s3 ? address : `${address}/${AZURITE_ACCOUNT}`
  // Listening; wait until it answers HTTP too (any status: an unsigned request gets 403).
  for (const deadline = Date.now() + 10_000; ; ) {
    try {
      await fetch(s3 ? endpoint : `${endpoint}?comp=list`, { signal: AbortSignal.timeout(2000) })
      break
    } catch (error) {
      if (Date.now() > deadline) throw new BenchFailure(`${name} does not answer: ${error.message}`)
      await new Promise((resolvePromise) => setTimeout(resolvePromise, 100))
    }
  }
  const connectionString =
    `DefaultEndpointsProtocol=http;AccountName=${AZURITE_ACCOUNT};AccountKey=${AZURITE_KEY};` +
    `BlobEndpoint=${endpoint};`
  return {
    name,
    version,
    child,
    dir: paths.server,
    endpoint,
    scheme: s3 ? 's3' : 'azure',
    // The SDKs' default credential chains read these from the process env.
    env: s3
      ? { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' }
      : { AZURE_STORAGE_CONNECTION_STRING: connectionString },
    // Azure: the connection string names the endpoint (storage.endpoint would conflict with it).
    storageConfig: s3
      ? ['storage:', `  endpoint: ${endpoint}`, '  path-style: true', '  region: us-east-1']
      : [],
    /** CPU seconds (user + system, all threads) the server has used so far. */
    cpuSeconds() {
      try {
        const stat = readFileSync(`/proc/${child.pid}/stat`, 'utf8')
        const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
        return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS
      } catch {
        return Number.NaN
      }
    },
    /** Bytes of the objects under the prefix, as the server lists them. */
    async objectBytes(prefix) {
      let total = 0
      if (s3) {
        const { S3Client, ListObjectsV2Command } = await import('@aws-sdk/client-s3')
        const client = new S3Client({
          endpoint,
          forcePathStyle: true,
          region: 'us-east-1',
          credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
        })
        try {
          let token
          do {
            const page = await client.send(
              new ListObjectsV2Command({
                Bucket: BUCKET,
                Prefix: prefix,
                ContinuationToken: token,
              }),
            )
            for (const object of page.Contents ?? []) total += object.Size ?? 0
            token = page.IsTruncated ? page.NextContinuationToken : undefined
          } while (token)
        } finally {
          client.destroy()
        }
      } else {
        const { BlobServiceClient } = await import('@azure/storage-blob')
        const container =
          BlobServiceClient.fromConnectionString(connectionString).getContainerClient(BUCKET)
        for await (const blob of container.listBlobsFlat({ prefix }))
          total += blob.properties.contentLength ?? 0
      }
      return total
    },
  }
}

/** Stops the server (SIGTERM, SIGKILL after 5 s) and removes its folder unless --keep. */
async function stopServer() {
  if (!server) return
  const { child, dir } = server
  if (child.exitCode === null && child.signalCode === null) {
    const exited = new Promise((resolvePromise) => child.once('exit', resolvePromise))
    child.kill('SIGTERM')
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
    await exited
    clearTimeout(timer)
  }
  server = undefined
  if (!args.values.keep) rmSync(dir, { recursive: true, force: true, maxRetries: 3 })
}

// ---------------------------------------------------------------------------------------------
// Deterministic data

/** Deterministic bytes from the seed: AES-256-CTR keystream (fast, and reproducible). */
class Rng {
  static zeros = Buffer.alloc(4 * MiB)

  constructor(label) {
    const key = createHash('sha256').update(`kluis-bench\0${seed}\0${label}`).digest()
    this.cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16))
    this.pool = Buffer.alloc(0)
    this.offset = 0
  }

  bytes(n) {
    if (n <= Rng.zeros.length) return this.cipher.update(Rng.zeros.subarray(0, n))
    const parts = []
    for (let left = n; left > 0; left -= Rng.zeros.length)
      parts.push(this.cipher.update(Rng.zeros.subarray(0, Math.min(left, Rng.zeros.length))))
    return Buffer.concat(parts)
  }

  u32() {
    if (this.offset + 4 > this.pool.length) {
      this.pool = this.bytes(64 * 1024)
      this.offset = 0
    }
    const value = this.pool.readUInt32LE(this.offset)
    this.offset += 4
    return value
  }

  float() {
    return this.u32() / 2 ** 32
  }

  /** Integer in [lo, hi]. */
  int(lo, hi) {
    return lo + Math.floor(this.float() * (hi - lo + 1))
  }

  /** Integer in [lo, hi], log-uniform: many small values, few large. */
  logInt(lo, hi) {
    return Math.round(Math.exp(Math.log(lo) + this.float() * (Math.log(hi) - Math.log(lo))))
  }
}

/** Word-like text with a skewed word distribution; compresses like prose and logs. */
function makeCorpus(rng, size) {
  const letters = 'etaoinshrdlcumwfgypbvkjxqz'
  const words = []
  for (let i = 0; i < 4096; i++) {
    let word = ''
    const length = rng.int(2, 10)
    for (let j = 0; j < length; j++) word += letters[Math.floor(letters.length * rng.float() ** 2)]
    words.push(word)
  }
  const lines = []
  let length = 0
  while (length < size) {
    const count = rng.int(4, 16)
    let line = ''
    for (let i = 0; i < count; i++) {
      line += i === 0 ? '' : ' '
      line +=
        rng.float() < 0.06
          ? String(rng.int(0, 99999))
          : words[Math.floor(words.length * rng.float() ** 3)]
    }
    line += rng.float() < 0.3 ? '.\n' : '\n'
    lines.push(line)
    length += line.length
  }
  return Buffer.from(lines.join(''), 'latin1')
}

function generateData(total) {
  const rng = new Rng('data')
  const corpus = makeCorpus(rng, 8 * MiB)

  /** n bytes of text: slices of the corpus at random places, each after a unique record line. */
  const text = (n) => {
    const buffer = Buffer.allocUnsafe(n)
    let at = 0
    while (at < n) {
      const stamp = 1_700_000_000 + rng.int(0, 50_000_000)
      at += buffer.write(
        `${new Date(stamp * 1000).toISOString()} id=${rng.bytes(8).toString('hex')} n=${rng.u32()}\n`,
        at,
        'latin1',
      )
      if (at >= n) break
      const length = Math.min(rng.int(256, 4096), n - at)
      const start = rng.int(0, corpus.length - length)
      at += corpus.copy(buffer, at, start, start + length)
    }
    return buffer
  }
  /** Random bytes limited to 64 values: about 6 bits per byte, so zstd saves ~20 %. */
  const randomish = (n) => {
    const buffer = rng.bytes(n)
    for (let i = 0; i < n; i++) buffer[i] &= 0x3f
    return buffer
  }
  /** 1 MiB blocks: random (incompressible), records (repetitive), or text. */
  const mixedBlock = (n, index) => {
    const kind = rng.float()
    if (kind < 0.4) return rng.bytes(n)
    if (kind < 0.7) {
      const record = rng.bytes(256).toString('hex') // 512 bytes
      const buffer = Buffer.allocUnsafe(n)
      let at = 0
      for (let i = 0; at < n; i++) at += buffer.write(`${index}:${i}:${record}\n`, at, 'latin1')
      return buffer
    }
    return text(n)
  }

  // ~40 % SQLite database
  const databaseTarget = Math.round(total * 0.4)
  const database = new DatabaseSync(paths.database)
  database.exec(`
    PRAGMA page_size = 4096;
    PRAGMA journal_mode = OFF;
    PRAGMA synchronous = OFF;
    CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL, created TEXT NOT NULL);
    CREATE TABLE documents (
      id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users (id), title TEXT NOT NULL,
      body TEXT NOT NULL, payload BLOB NOT NULL, updated TEXT NOT NULL);
    CREATE INDEX documents_user ON documents (user_id);
  `)
  const userCount = Math.max(100, Math.round(databaseTarget / (256 * 1024)))
  const addUser = database.prepare(
    'INSERT INTO users (id, name, email, created) VALUES (?, ?, ?, ?)',
  )
  database.exec('BEGIN')
  for (let id = 1; id <= userCount; id++) {
    const name = text(24).toString('latin1').replace(/\s+/g, ' ')
    addUser.run(id, name, `user${id}@example.org`, new Date(1.6e12 + id * 3.6e6).toISOString())
  }
  database.exec('COMMIT')
  const addDocument = database.prepare(
    'INSERT INTO documents (user_id, title, body, payload, updated) VALUES (?, ?, ?, ?, ?)',
  )
  let inserted = 0
  let rows = userCount
  database.exec('BEGIN')
  while (inserted < databaseTarget * 0.96) {
    const body = text(rng.int(300, 4000)).toString('latin1')
    const payloadLength = rng.int(1024, 12 * 1024)
    const half = payloadLength >> 1
    const payload = Buffer.concat([randomish(half), text(payloadLength - half)])
    addDocument.run(
      rng.int(1, userCount),
      `document ${rows} ${rng.bytes(6).toString('hex')}`,
      body,
      payload,
      new Date(1.7e12 + rows * 60_000).toISOString(),
    )
    inserted += body.length + payload.length + 80
    rows++
    if (rows % 2000 === 0) database.exec('COMMIT; BEGIN')
  }
  database.exec('COMMIT')
  database.exec('PRAGMA journal_mode = DELETE')
  database.close()
  const databaseBytes = statSync(paths.database).size

  // ~60 % files: many small text files, some medium, a few large
  const filesTarget = Math.max(total - databaseBytes, 8 * MiB)
  const smallTarget = Math.round(filesTarget * (25 / 60))
  const mediumTarget = Math.round(filesTarget * (15 / 60))
  const largeTarget = filesTarget - smallTarget - mediumTarget
  const mtime = new Date('2026-01-01T00:00:00Z')
  let fileCount = 0
  let filesBytes = 0
  const writeFile = (path, data) => {
    writeFileSync(path, data)
    utimesSync(path, mtime, mtime)
    fileCount++
    filesBytes += data.length
  }

  const smallExtensions = ['txt', 'md', 'json', 'html', 'csv', 'log', 'yml', 'js']
  for (let written = 0, n = 0; written < smallTarget; n++) {
    const directory = join(
      paths.files,
      'docs',
      `d${String(Math.floor(n / 4096)).padStart(2, '0')}`,
      `d${String(Math.floor(n / 64) % 64).padStart(2, '0')}`,
    )
    if (n % 64 === 0) mkdirSync(directory, { recursive: true })
    const size = Math.min(rng.logInt(512, 96 * 1024), smallTarget - written)
    writeFile(join(directory, `f${n}.${smallExtensions[n % smallExtensions.length]}`), text(size))
    written += size
  }

  mkdirSync(join(paths.files, 'media'), { recursive: true })
  for (let written = 0, n = 0; written < mediumTarget; n++) {
    const size = Math.min(rng.logInt(128 * 1024, 4 * MiB), mediumTarget - written)
    const kind = rng.float()
    const [extension, data] =
      kind < 0.35
        ? ['jpg', rng.bytes(size)]
        : kind < 0.7
          ? ['json', text(size)]
          : ['pdf', Buffer.concat([rng.bytes(size >> 1), text(size - (size >> 1))])]
    writeFile(join(paths.files, 'media', `m${n}.${extension}`), data)
    written += size
  }

  mkdirSync(join(paths.files, 'archive'), { recursive: true })
  const largeCount = Math.max(2, Math.ceil(largeTarget / (64 * MiB)))
  for (let n = 0; n < largeCount; n++) {
    const size =
      n < largeCount - 1
        ? Math.floor(largeTarget / largeCount)
        : largeTarget - (largeCount - 1) * Math.floor(largeTarget / largeCount)
    const path = join(paths.files, 'archive', `large${n}.bin`)
    const fd = openSync(path, 'w')
    try {
      for (let at = 0, block = 0; at < size; block++) {
        const piece = mixedBlock(Math.min(MiB, size - at), block)
        writeSync(fd, piece)
        at += piece.length
      }
    } finally {
      closeSync(fd)
    }
    utimesSync(path, mtime, mtime)
    fileCount++
    filesBytes += size
  }
  // Fixed times everywhere: the same seed gives the same tar stream.
  utimesSync(paths.database, mtime, mtime)
  const directories = readdirSync(paths.data, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isDirectory())
    .map((entry) => join(entry.parentPath, entry.name))
  for (const directory of [...directories.reverse(), paths.data])
    utimesSync(directory, mtime, mtime)
  return { databaseBytes, rows, filesBytes, fileCount }
}

// ---------------------------------------------------------------------------------------------
// Verification helpers

/** SHA-256 over a folder: each file's relative path, mode bits and content, in sorted order. */
function treeHash(directory) {
  const hash = createHash('sha256')
  const buffer = Buffer.allocUnsafe(4 * MiB)
  let count = 0
  let bytes = 0
  const walk = (dir, prefix) => {
    for (const name of readdirSync(dir).sort()) {
      const path = join(dir, name)
      const rel = prefix ? `${prefix}/${name}` : name
      const info = lstatSync(path)
      if (info.isDirectory()) {
        hash.update(`d ${rel}\0`)
        walk(path, rel)
      } else if (info.isFile()) {
        hash.update(`f ${rel} ${info.size}\0`)
        const fd = openSync(path, 'r')
        try {
          for (;;) {
            const read = readSync(fd, buffer, 0, buffer.length, null)
            if (read === 0) break
            hash.update(buffer.subarray(0, read))
          }
        } finally {
          closeSync(fd)
        }
        count++
        bytes += info.size
      } else {
        hash.update(`o ${rel}\0`)
      }
    }
  }
  walk(directory, '')
  return { sha256: hash.digest('hex'), count, bytes }
}

/** Row counts per table and a SHA-256 of every row, read through SQLite. */
function databaseDigest(file) {
  const database = new DatabaseSync(file, { readOnly: true })
  try {
    const rows = {}
    const hash = createHash('sha256')
    const tables = database
      .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
      .all()
      .map((row) => row.name)
    for (const table of tables) {
      rows[table] = Number(database.prepare(`SELECT count(*) AS n FROM "${table}"`).get().n)
      for (const row of database.prepare(`SELECT * FROM "${table}" ORDER BY rowid`).iterate()) {
        for (const value of Object.values(row)) {
          hash.update(value instanceof Uint8Array ? value : String(value))
          hash.update('\0')
        }
      }
    }
    return { rows, sha256: hash.digest('hex') }
  } finally {
    database.close()
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

function printTable(report) {
  const { kluis: k, peer: p, ratios: r } = report
  const rss = (mb) => (mb === null ? '-' : mb.toFixed(0))
  const cpu = (seconds) => (seconds == null ? '-' : seconds.toFixed(1))
  const remote = report.storage.kind !== 'local'
  const row = (label, m, ratio) => [
    label,
    m.seconds.toFixed(2),
    m.mbPerSecond.toFixed(0),
    rss(m.peakRssMB),
    cpu(m.cpuSeconds),
    ...(remote ? [cpu(m.serverCpuSeconds)] : []),
    `${ratio.toFixed(2)}×`,
  ]
  const rows = [
    [
      'Operation',
      'Seconds',
      'MB/s',
      'Peak RSS MB',
      'CPU s',
      ...(remote ? ['Server CPU s'] : []),
      'Throughput vs peer',
    ],
    row('kluis backup', k.backup, r.backupThroughput),
    row('peer backup (tar | zstd | gpg -e)', p.backup, 1),
    row('kluis backup, unchanged data', k.backupUnchanged, r.unchangedBackupThroughput),
    row('kluis restore', k.restore, r.restoreThroughput),
    row('peer restore (gpg -d | zstd -d | tar -x)', p.restore, 1),
  ]
  const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)))
  const line = (row) =>
    row.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  ')
  const d = report.data
  out('')
  out(
    `kluis bench: ${formatBytes(d.bytes)} (database ${formatBytes(d.databaseBytes)}, ${d.databaseRows} rows; ` +
      `${d.fileCount} files ${formatBytes(d.filesBytes)}), seed ${report.seed}`,
  )
  out(
    `machine: ${report.machine.nproc} CPUs, ${report.machine.cpu}; Node ${report.node}; ${report.machine.gpg}`,
  )
  out(
    `measured with ${report.peakRssMethod}; the peer's RSS and CPU are summed over its 3 processes`,
  )
  const st = report.storage
  out(
    remote
      ? `storage: ${st.repository} on ${st.server}; ${st.note}; the server's CPU is not in kluis's`
      : 'storage: a local folder (file://./repo)',
  )
  if (report.runs > 1) out(`times: median of ${report.runs} runs; peak RSS: highest of the runs`)
  if (report.profiled) out('NOTE: kluis ran with --cpu-prof: its times include profiling overhead')
  out('')
  out(line(rows[0]))
  out(widths.map((w) => '-'.repeat(w)).join('  '))
  for (const row of rows.slice(1)) out(line(row))
  out('')
  out(`backup throughput ratio (kluis / peer):  ${r.backupThroughput.toFixed(2)}×`)
  out(`restore throughput ratio (kluis / peer): ${r.restoreThroughput.toFixed(2)}×`)
  if (r.backupCpu !== null)
    out(
      `CPU time ratio (kluis / peer): backup ${r.backupCpu.toFixed(2)}×, restore ${r.restoreCpu.toFixed(2)}×`,
    )
  out(
    `unchanged second backup added ${formatBytes(k.backupUnchanged.bytesAdded)} ` +
      `= ${k.backupUnchanged.bytesAddedPercent.toFixed(3)} % of the data`,
  )
  out(
    `stored: kluis repository ${formatBytes(k.repositoryBytes)} (${(100 * k.storedRatio).toFixed(1)} % of the data), ` +
      `peer ${formatBytes(p.outputBytes)} (${(100 * p.storedRatio).toFixed(1)} %)`,
  )
  out(`repository size: ${st.repositoryBytesMethod}`)
  if (remote)
    out(
      `${st.server.split(' ')[0]}'s data folder grew by ${formatBytes(st.serverFolderGrowthBytes)} ` +
        "during the first backup (objects and the server's own metadata)",
    )
  if (report.problems.length > 0) out('RESTORE VERIFICATION FAILED (details below)')
  else
    out(
      'restores verified: files tree SHA-256 and SQLite row counts and content match (kluis and peer)',
    )
}

// ---------------------------------------------------------------------------------------------
// Main (last: the classes above must be initialized first)

try {
  await run()
} catch (error) {
  process.stderr.write(
    `bench: FAILED: ${error instanceof BenchFailure ? error.message : (error?.stack ?? error)}\n`,
  )
  process.exitCode = 1
} finally {
  await stopServer()
}
