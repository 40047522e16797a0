import { spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, unlink, writeFile } from 'node:fs/promises'
import { hostname, tmpdir } from 'node:os'
import { dirname, join, relative } from 'node:path'
import * as openpgp from 'openpgp'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openRepository } from '../src/commands/common.js'
import { selectSnapshot } from '../src/commands/select-snapshot.js'
import { loadConfig } from '../src/config/config.js'
import { loadWriterPublicKey } from '../src/config/key-material.js'
import {
  createBareRepository,
  type GitHttpServer,
  git,
  gitBytesIn,
  gitIn,
  startGitHttpServer,
} from './support/git-server.js'
import { type CliRun, createProject, type Project, requireTool } from './support/project.js'

requireTool('git', 'git')

/** A distinctive token: easy to find anywhere it must not be. */
const TOKEN = `ghs_${randomBytes(18).toString('hex')}`
const WRONG_TOKEN = `ghs_${randomBytes(18).toString('hex')}`

/** Every byte value, twice, with a NUL and CRLF in the middle: nothing may be "text-converted". */
const BINARY = Buffer.concat([
  Buffer.from(Array.from({ length: 256 }, (_, i) => i)),
  Buffer.from('\r\n\0'),
  Buffer.from(Array.from({ length: 256 }, (_, i) => 255 - i)),
])
const UNICODE_NAME = 'config/über settings 🚀.yml'

/** The first version of the project's configuration: relative path → content. */
const VERSION_1: Record<string, string | Buffer> = {
  'config/settings.yml': 'database:\n  host: db.internal\n  pool: 5\n',
  'config/secrets/db.key': 'postgres-password: PLAINTEXT-db-secret-one\n',
  'config/tls/server.key': '-----BEGIN PRIVATE KEY-----\nPLAINTEXT-tls-key-one\n',
  [UNICODE_NAME]: 'unicode: ✓ ñandú\n',
  'config/blob.bin': BINARY,
  'deploy/app.yml': 'replicas: 2\n',
  '.env.production': 'API_TOKEN=PLAINTEXT-env-secret-one\n',
  // Not matched by `paths`: never in the backups repository.
  'deploy/README.md': 'how to deploy\n',
  'deploy/nested/skip.yml': 'nested: not matched by deploy/*.yml\n',
  '.env.local': 'LOCAL=PLAINTEXT-local-not-in-paths\n',
  'notes.txt': 'not configuration\n',
}
/** What the backups repository holds under `app/` for VERSION_1. */
const EXPECTED_TREE_1 = [
  '.env.production.asc',
  'config/blob.bin',
  'config/secrets/db.key.asc',
  'config/settings.yml',
  'config/tls/server.key.asc',
  UNICODE_NAME,
  'deploy/app.yml',
].sort()
const SECRETS = ['config/secrets/db.key', 'config/tls/server.key', '.env.production']
const NOT_MATCHED = ['deploy/README.md', 'deploy/nested/skip.yml', '.env.local', 'notes.txt']

/** A configuration with one git-config source; `null` leaves a setting out (its default). */
function gitConfigYaml(options: {
  remote: string
  directory?: string | null
  branch?: string | null
  token?: string
  repository?: string
}): string {
  const directory = options.directory === undefined ? 'app' : options.directory
  const branch = options.branch === undefined ? 'main' : options.branch
  return `repository: file://./${options.repository ?? 'backup-repo'}
keys:
  readers: [keys/reader.asc]
  writer: keys/writer.key
  writer-public: keys/writer.asc
sources:
  - name: config
    type: git-config
    paths: ["config/**", "deploy/*.yml", ".env.production"]
    secret: [".env*", "**/*.key", "**/secrets/**"]
    remote: ${JSON.stringify(options.remote)}
${branch === null ? '' : `    branch: ${branch}\n`}${directory === null ? '' : `    directory: ${directory}\n`}${options.token ? `    token: ${options.token}\n` : ''}`
}

/**
 * Variables a user's shell or npm commonly sets (npm sets EDITOR for every script) that name
 * programs git may run. Kept out of the ordinary runs; one test sets them all on purpose.
 */
const PROGRAM_VARIABLES = {
  EDITOR: 'vi',
  VISUAL: 'vi',
  PAGER: 'less',
  GIT_EDITOR: 'vi',
  GIT_PAGER: 'cat',
  GIT_ASKPASS: '/bin/false',
  SSH_ASKPASS: '/bin/false',
  GIT_SSH_COMMAND: 'ssh -o BatchMode=yes',
}

/**
 * The environment of a kluis run: the real one (PATH), but with an empty HOME and git's system
 * configuration ignored, as on a fresh CI runner (no user.name, no credential helper).
 */
function kluisEnv(project: Project, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  mkdirSync(join(project.dir, 'tmp'), { recursive: true })
  mkdirSync(join(project.dir, 'home'), { recursive: true })
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    HOME: join(project.dir, 'home'),
    XDG_CONFIG_HOME: join(project.dir, 'home'),
    GIT_CONFIG_NOSYSTEM: '1',
    KLUIS_TMPDIR: join(project.dir, 'tmp'),
  }
  for (const name of Object.keys(PROGRAM_VARIABLES)) delete env[name]
  return { ...env, ...extra }
}

async function writeFiles(root: string, files: Record<string, string | Buffer>): Promise<void> {
  for (const [name, content] of Object.entries(files)) {
    await mkdir(dirname(join(root, name)), { recursive: true })
    await writeFile(join(root, name), content)
  }
}

/** Every file below `root`, relative, sorted. */
async function listFiles(root: string): Promise<string[]> {
  const entries = await readdir(root, { recursive: true, withFileTypes: true })
  return entries
    .filter((entry) => entry.isFile())
    .map((entry) => relative(root, join(entry.parentPath, entry.name)))
    .sort()
}

/** The files of `branch` below `directory/` in a repository, relative to that folder. */
function treeOf(repository: string, directory: string, ref = 'main'): string[] {
  return gitIn(repository, ['ls-tree', '-r', '-z', '--name-only', ref, '--', `${directory}/`])
    .split('\0')
    .filter(Boolean)
    .map((name) => name.slice(directory.length + 1))
    .sort()
}

function changedNames(repository: string, from: string, to: string): string[] {
  return gitIn(repository, ['diff', '-z', '--name-only', from, to])
    .split('\0')
    .filter(Boolean)
    .sort()
}

function commitCount(repository: string, ref = 'main'): number {
  return Number(gitIn(repository, ['rev-list', '--count', ref]).trim())
}

/** The commit the snapshot index records for the source (whatever its field is called). */
async function recordedCommit(
  project: Project,
  snapshotId: string,
  configFile = 'kluis.yml',
): Promise<string> {
  const env = kluisEnv(project)
  const config = await loadConfig(join(project.dir, configFile), env)
  const writer = await loadWriterPublicKey(config)
  const repository = await openRepository(config, env)
  const index = await selectSnapshot(repository, writer, { snapshot: snapshotId })
  const entry = index.sources.find((source) => source.name === 'config')
  const commit = JSON.stringify(entry).match(/"([0-9a-f]{40})"/)?.[1]
  if (!commit) throw new Error(`snapshot ${snapshotId} records no commit: ${JSON.stringify(entry)}`)
  return commit
}

/** Decrypts and verifies an armored message as a reader would, outside kluis. */
async function decryptArmored(project: Project, armored: string): Promise<Buffer> {
  const readerKey = await openpgp.readPrivateKey({
    armoredKey: await readFile(join(project.dir, 'keys', 'reader.key'), 'utf8'),
  })
  const writerKey = await openpgp.readKey({
    armoredKey: await readFile(join(project.dir, 'keys', 'writer.asc'), 'utf8'),
  })
  const { data } = await openpgp.decrypt({
    message: await openpgp.readMessage({ armoredMessage: armored }),
    decryptionKeys: readerKey,
    verificationKeys: writerKey,
    expectSigned: true,
    format: 'binary',
  })
  return Buffer.from(data as Uint8Array)
}

/** Exit 1 with exactly one `kluis:` error line (detail and hint lines may follow), no stack trace. */
function expectOneClearError(run: CliRun): string {
  expect(run.code).toBe(1)
  const errors = run.stderr.split('\n').filter((line) => line.startsWith('kluis:'))
  expect(errors).toHaveLength(1)
  expect(run.stderr).not.toMatch(/\n\s+at .+:\d+:\d+/)
  expect(run.stderr).not.toContain('unexpected error')
  return errors[0] as string
}

/** Runs `fn` with the process in `dir`, so in-process CLI runs can overlap safely. */
async function inDirectory<T>(dir: string, fn: () => Promise<T>): Promise<T> {
  const previous = process.cwd()
  process.chdir(dir)
  try {
    return await fn()
  } finally {
    process.chdir(previous)
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

describe('git-config source: a bare repository through file://', () => {
  let project: Project
  let root: string
  let bare: string
  const snapshots: string[] = []
  const backup = async () => {
    const run = await project.run(['backup', '--json'], kluisEnv(project))
    expect(run.stderr).not.toContain('kluis:')
    expect(run.code).toBe(0)
    const result = JSON.parse(run.stdout)
    snapshots.push(result.snapshotId)
    return result
  }

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'kluis-git-'))
    bare = await createBareRepository(root, 'backups.git')
    project = await createProject({ config: gitConfigYaml({ remote: `file://${bare}` }) })
    await writeFiles(project.dir, VERSION_1)
    expect((await project.run(['init'], kluisEnv(project))).code).toBe(0)
  })
  afterAll(async () => {
    await project.cleanup()
    await rm(root, { recursive: true, force: true })
  })

  it('mirrors the matched files into app/ on main, secrets only as signed .asc messages', async () => {
    const result = await backup()
    expect(result.snapshotId).toMatch(/^[0-9a-f]{32}$/)
    expect(result.sources.map((s: { name: string }) => s.name)).toEqual(['config'])

    expect(treeOf(bare, 'app')).toEqual(EXPECTED_TREE_1)
    expect(gitIn(bare, ['show', 'main:app/config/settings.yml'])).toBe(
      VERSION_1['config/settings.yml'],
    )
    expect(gitIn(bare, ['show', 'main:app/deploy/app.yml'])).toBe(VERSION_1['deploy/app.yml'])
    expect(gitBytesIn(bare, ['show', 'main:app/config/blob.bin']).equals(BINARY)).toBe(true)
    expect(gitIn(bare, ['show', `main:app/${UNICODE_NAME}`])).toBe(VERSION_1[UNICODE_NAME])

    for (const secret of SECRETS) {
      const armored = gitIn(bare, ['show', `main:app/${secret}.asc`])
      expect(armored.startsWith('-----BEGIN PGP MESSAGE-----'), secret).toBe(true)
      expect(armored.trimEnd().endsWith('-----END PGP MESSAGE-----'), secret).toBe(true)
      expect(armored).not.toContain(String(VERSION_1[secret]).trim())
      expect(armored).not.toContain('PLAINTEXT')
      // Encrypted to the reader and signed by the writer: what a reviewer with the key can check.
      expect((await decryptArmored(project, armored)).toString()).toBe(VERSION_1[secret])
    }
    // Nothing the repository holds anywhere (all branches, all objects) is a secret's plaintext.
    const everything = gitIn(bare, ['log', '--all', '-p', '--format=%H %s%n%b'])
    expect(everything).not.toContain('PLAINTEXT')

    const message = gitIn(bare, ['log', '-1', '--format=%B', 'main'])
    expect(message.startsWith('kluis backup ')).toBe(true)
    expect(message).toContain(result.snapshotId.slice(0, 8))
    expect(message).toContain(hostname())
    expect(message).toMatch(/\d{4}-\d{2}-\d{2}/)
    expect(await recordedCommit(project, result.snapshotId)).toBe(
      gitIn(bare, ['rev-parse', 'main']).trim(),
    )
  })

  it("a secret decrypts with gpg alone, which reports the writer's good signature", async () => {
    const gnupghome = await mkdtemp(join(tmpdir(), 'kluis-gnupg-'))
    const gpgEnv = { ...process.env, GNUPGHOME: gnupghome, LC_ALL: 'C' }
    try {
      const imported = spawnSync(
        'gpg',
        ['--batch', '--quiet', '--import', 'keys/reader.key', 'keys/writer.asc'],
        { cwd: project.dir, env: gpgEnv },
      )
      expect(imported.status, String(imported.stderr)).toBe(0)
      const decrypted = spawnSync('gpg', ['--batch', '--decrypt'], {
        input: gitIn(bare, ['show', 'main:app/.env.production.asc']),
        env: gpgEnv,
        encoding: 'utf8',
      })
      expect(decrypted.status, decrypted.stderr).toBe(0)
      expect(decrypted.stdout).toBe(VERSION_1['.env.production'])
      expect(decrypted.stderr).toContain('Good signature')
    } finally {
      spawnSync('gpgconf', ['--kill', 'gpg-agent'], { env: gpgEnv })
      await rm(gnupghome, { recursive: true, force: true })
    }
  })

  it('a changed plain file shows as a normal diff and is the only change', async () => {
    const before = gitIn(bare, ['rev-parse', 'main']).trim()
    await writeFile(
      join(project.dir, 'config/settings.yml'),
      'database:\n  host: db.internal\n  pool: 10\n',
    )
    await backup()
    // Unchanged secrets are not re-encrypted (which would change every .asc on every run).
    expect(changedNames(bare, before, 'main')).toEqual(['app/config/settings.yml'])
    const patch = gitIn(bare, ['log', '-p', '-1', 'main'])
    expect(patch).toContain('-  pool: 5')
    expect(patch).toContain('+  pool: 10')
    expect(patch).toContain(' database:')
  })

  it("a changed secret shows only that its .asc changed, never the secret's content", async () => {
    const before = gitIn(bare, ['rev-parse', 'main']).trim()
    await writeFile(
      join(project.dir, 'config/secrets/db.key'),
      'postgres-password: PLAINTEXT-db-secret-two\n',
    )
    await backup()
    expect(changedNames(bare, before, 'main')).toEqual(['app/config/secrets/db.key.asc'])
    const patch = gitIn(bare, ['log', '-p', '-1', 'main'])
    expect(patch).toContain('app/config/secrets/db.key.asc')
    expect(patch).not.toContain('PLAINTEXT')
    expect(patch).toContain('PGP MESSAGE')
  })

  it('a backup with nothing changed makes no commit, and its snapshot records the same commit', async () => {
    const before = gitIn(bare, ['rev-parse', 'main']).trim()
    const count = commitCount(bare)
    const previousSnapshot = snapshots.at(-1) as string
    const result = await backup()
    expect(result.snapshotId).not.toBe(previousSnapshot)
    expect(gitIn(bare, ['rev-parse', 'main']).trim()).toBe(before)
    expect(commitCount(bare)).toBe(count)
    expect(await recordedCommit(project, previousSnapshot)).toBe(before)
    expect(await recordedCommit(project, result.snapshotId)).toBe(before)
  })

  it('deleted files, and files that no longer match, disappear from the next commit', async () => {
    const before = gitIn(bare, ['rev-parse', 'main']).trim()
    await unlink(join(project.dir, 'deploy/app.yml'))
    await unlink(join(project.dir, 'config/tls/server.key'))
    await writeFile(join(project.dir, 'deploy/new.yml'), 'replicas: 3\n')
    await backup()
    const tree = treeOf(bare, 'app')
    expect(tree).not.toContain('deploy/app.yml')
    expect(tree).not.toContain('config/tls/server.key.asc')
    expect(tree).toContain('deploy/new.yml')
    const status = gitIn(bare, ['diff', '--name-status', before, 'main']).trim().split('\n').sort()
    expect(status).toEqual([
      'A\tapp/deploy/new.yml',
      'D\tapp/config/tls/server.key.asc',
      'D\tapp/deploy/app.yml',
    ])
  })

  it('restores the latest commit byte-equal: binary, Unicode names, decrypted secrets', async () => {
    const run = await project.run(
      ['restore', '--source', 'config', '--target', 'out', '--key', 'keys/reader.key'],
      kluisEnv(project),
    )
    expect(run.stderr).not.toContain('kluis:')
    expect(run.code).toBe(0)
    const out = join(project.dir, 'out', 'config')
    const expected = [
      '.env.production',
      'config/blob.bin',
      'config/secrets/db.key',
      'config/settings.yml',
      UNICODE_NAME,
      'deploy/new.yml',
    ].sort()
    expect(await listFiles(out)).toEqual(expected)
    for (const name of expected) {
      const original = await readFile(join(project.dir, name))
      expect((await readFile(join(out, name))).equals(original), name).toBe(true)
    }
    for (const name of NOT_MATCHED) expect(await listFiles(out)).not.toContain(name)
  })

  it("defaults: the branch is main and the folder is the source's name", async () => {
    const other = await createBareRepository(root, 'defaults.git')
    await writeFile(
      join(project.dir, 'defaults.yml'),
      gitConfigYaml({
        remote: `file://${other}`,
        directory: null,
        branch: null,
        repository: 'defaults-repo',
      }),
    )
    const env = kluisEnv(project)
    expect((await project.run(['init', '--config', 'defaults.yml'], env)).code).toBe(0)
    const run = await project.run(['backup', '--config', 'defaults.yml'], env)
    expect(run.stderr).not.toContain('kluis:')
    expect(run.code).toBe(0)
    expect(gitIn(other, ['for-each-ref', '--format=%(refname)']).trim()).toBe('refs/heads/main')
    expect(treeOf(other, 'config')).toContain('config/settings.yml')
    expect(treeOf(other, 'config')).toContain('.env.production.asc')
  })

  it("works in a user's usual environment (EDITOR, PAGER, GIT_ASKPASS, GIT_SSH_COMMAND set)", async () => {
    const before = gitIn(bare, ['rev-parse', 'main']).trim()
    await writeFile(join(project.dir, 'deploy/new.yml'), 'replicas: 5\n')
    const run = await project.run(['backup', '--json'], kluisEnv(project, PROGRAM_VARIABLES))
    expect(run.stderr).not.toContain('kluis:')
    expect(run.code).toBe(0)
    expect(changedNames(bare, before, 'main')).toEqual(['app/deploy/new.yml'])
  })
})

describe('git-config source: restore-test', () => {
  let project: Project
  let root: string
  let bare: string

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'kluis-git-'))
    bare = await createBareRepository(root, 'backups.git')
    project = await createProject({ config: gitConfigYaml({ remote: `file://${bare}` }) })
    await writeFiles(project.dir, VERSION_1)
    expect((await project.run(['init'], kluisEnv(project))).code).toBe(0)
  })
  afterAll(async () => {
    await project.cleanup()
    await rm(root, { recursive: true, force: true })
  })

  it('verifies every file of the recorded commit; a force-push that removed the commit fails it', async () => {
    const backup = await project.run(['backup', '--json'], kluisEnv(project))
    expect(backup.code, backup.stderr).toBe(0)
    const commit = await recordedCommit(project, JSON.parse(backup.stdout).snapshotId)
    const restoreTest = async () => {
      const run = await project.run(
        ['restore-test', '--key', 'keys/reader.key', '--report', 'report.json'],
        kluisEnv(project),
      )
      const report = JSON.parse(await readFile(join(project.dir, 'report.json'), 'utf8'))
      return { run, report }
    }

    const passed = await restoreTest()
    expect(passed.run.code, passed.run.stderr).toBe(0)
    expect(passed.report.sources).toEqual([
      expect.objectContaining({
        name: 'config',
        type: 'git-config',
        passed: true,
        detail: `${EXPECTED_TREE_1.length} files from commit ${commit.slice(0, 12)} (${SECRETS.length} decrypted)`,
      }),
    ])

    // Someone force-pushes an unrelated history over the branch, and the old commit is gone.
    const emptyTree = gitIn(bare, ['mktree'], { input: '' }).trim()
    const rewritten = gitIn(bare, ['commit-tree', emptyTree, '-m', 'rewritten']).trim()
    gitIn(bare, ['update-ref', 'refs/heads/main', rewritten])
    gitIn(bare, ['reflog', 'expire', '--expire=now', '--all'])
    gitIn(bare, ['gc', '--prune=now', '--quiet'])

    const failed = await restoreTest()
    expect(failed.run.code).toBe(1)
    expect(failed.report.passed).toBe(false)
    expect(failed.report.failures).toEqual([
      expect.stringContaining(`commit ${commit} is not in the backups repository`),
    ])
    expect(failed.run.stdout + failed.run.stderr).toContain(`commit ${commit}`)
  })
})

describe('git-config source: restore at a point in time', () => {
  let project: Project
  let root: string
  let bare: string
  let first: string
  let between: string
  const env = () => kluisEnv(project)
  const restore = (target: string, ...choice: string[]) =>
    project.run(
      ['restore', '--source', 'config', ...choice, '--target', target, '--key', 'keys/reader.key'],
      env(),
    )

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'kluis-git-'))
    bare = await createBareRepository(root, 'backups.git')
    project = await createProject({ config: gitConfigYaml({ remote: bare }) }) // a plain path
    await writeFiles(project.dir, VERSION_1)
    expect((await project.run(['init'], env())).code).toBe(0)
    const one = await project.run(['backup', '--json'], env())
    expect(one.code).toBe(0)
    first = JSON.parse(one.stdout).snapshotId
    // Commit times have whole seconds: keep a clear second on either side of `between`.
    await sleep(1100)
    between = new Date().toISOString()
    await sleep(1100)
    await writeFiles(project.dir, {
      'config/settings.yml': 'database:\n  host: db2.internal\n  pool: 7\n',
      'config/secrets/db.key': 'postgres-password: PLAINTEXT-db-secret-two\n',
      '.env.production': 'API_TOKEN=PLAINTEXT-env-secret-two\n',
      'config/added.yml': 'added: in version two\n',
    })
    await unlink(join(project.dir, 'deploy/app.yml'))
    const two = await project.run(['backup', '--json'], env())
    expect(two.code).toBe(0)
    expect(commitCount(bare)).toBe(2)
  })
  afterAll(async () => {
    await project.cleanup()
    await rm(root, { recursive: true, force: true })
  })

  const expectVersion1 = async (target: string) => {
    const out = join(project.dir, target, 'config')
    const names = await listFiles(out)
    expect(names).toEqual(EXPECTED_TREE_1.map((name) => name.replace(/\.asc$/, '')).sort())
    for (const name of names) {
      const content = VERSION_1[name] as string | Buffer
      expect((await readFile(join(out, name))).equals(Buffer.from(content)), name).toBe(true)
    }
  }

  it('--snapshot FIRST restores the first version', async () => {
    const run = await restore('by-snapshot', '--snapshot', first.slice(0, 8))
    expect(run.stderr).not.toContain('kluis:')
    expect(run.code).toBe(0)
    await expectVersion1('by-snapshot')
  })

  it('--at a time between the two backups restores the first version', async () => {
    const run = await restore('by-time', '--at', between)
    expect(run.stderr).not.toContain('kluis:')
    expect(run.code).toBe(0)
    await expectVersion1('by-time')
  })

  it('the latest snapshot restores the second version, secrets decrypted byte-equal', async () => {
    const run = await restore('latest')
    expect(run.code).toBe(0)
    const out = join(project.dir, 'latest', 'config')
    const names = await listFiles(out)
    expect(names).toContain('config/added.yml')
    expect(names).not.toContain('deploy/app.yml')
    for (const name of names) {
      const original = await readFile(join(project.dir, name))
      expect((await readFile(join(out, name))).equals(original), name).toBe(true)
    }
    expect(await readFile(join(out, '.env.production'), 'utf8')).toBe(
      'API_TOKEN=PLAINTEXT-env-secret-two\n',
    )
  })

  it('refuses a non-empty target unless --force', async () => {
    const target = join(project.dir, 'busy')
    await mkdir(join(target, 'config'), { recursive: true })
    await writeFile(join(target, 'config', 'stale.txt'), 'old')
    const refused = await restore('busy')
    expect(refused.code).toBe(1)
    expect(refused.stderr).toContain('is not empty')
    expect(refused.stderr).toContain('--force')
    expect(await readFile(join(target, 'config', 'stale.txt'), 'utf8')).toBe('old')

    const forced = await project.run(
      [
        'restore',
        '--source',
        'config',
        '--snapshot',
        first.slice(0, 8),
        '--target',
        'busy',
        '--key',
        'keys/reader.key',
        '--force',
      ],
      env(),
    )
    expect(forced.code).toBe(0)
    await expectVersion1('busy')
  })
})

/** Collects the argv of every process seen while it runs (polling /proc). */
function watchArgv(): { stop(): string[] } {
  const seen = new Set<string>()
  const poll = () => {
    let pids: string[] = []
    try {
      pids = readdirSync('/proc').filter((name) => /^\d+$/.test(name))
    } catch {
      return
    }
    for (const pid of pids) {
      try {
        seen.add(readFileSync(`/proc/${pid}/cmdline`).toString().replaceAll('\0', ' '))
      } catch {
        // gone already
      }
    }
  }
  poll()
  const timer = setInterval(poll, 1)
  return {
    stop() {
      clearInterval(timer)
      poll()
      return [...seen]
    },
  }
}

/** Every file below `root` whose bytes contain one of `needles`, relative. */
async function filesContaining(root: string, needles: string[]): Promise<string[]> {
  const found: string[] = []
  for (const entry of await readdir(root, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue
    const path = join(entry.parentPath, entry.name)
    const bytes = await readFile(path).catch(() => Buffer.alloc(0))
    if (needles.some((needle) => bytes.includes(needle))) found.push(relative(root, path))
  }
  return found
}

/** The forms a token could leak in: itself, and the basic-auth header value. */
const leakForms = (token: string) => [
  token,
  Buffer.from(`x-access-token:${token}`).toString('base64'),
  Buffer.from(`:${token}`).toString('base64').slice(2),
]

describe('git-config source: an https remote with a token (git http-backend on loopback)', () => {
  let project: Project
  let root: string
  let bare: string
  let server: GitHttpServer
  const outputs: CliRun[] = []
  const argv: string[] = []
  const run = async (args: string[], token = TOKEN) => {
    const watch = watchArgv()
    try {
      const result = await project.run(
        args,
        kluisEnv(project, { BACKUPS_REPO_TOKEN: token, GIT_SSL_CAINFO: server.caFile }),
      )
      outputs.push(result)
      return result
    } finally {
      argv.push(...watch.stop())
    }
  }

  beforeAll(async () => {
    requireTool('/usr/lib/git-core/git-http-backend', 'git')
    requireTool('openssl', 'openssl')
    root = await mkdtemp(join(tmpdir(), 'kluis-git-'))
    bare = await createBareRepository(root, 'backups.git')
    server = await startGitHttpServer({ root, token: TOKEN, tls: true })
    project = await createProject({
      config: gitConfigYaml({ remote: server.url('backups.git'), token: '${BACKUPS_REPO_TOKEN}' }),
    })
    await writeFiles(project.dir, VERSION_1)
    expect((await run(['init'])).code).toBe(0)
  })
  afterAll(async () => {
    await server?.stop()
    await project?.cleanup()
    await rm(root, { recursive: true, force: true })
  })

  it('self-check: the server lets git clone and push with the token and answers 401 without it', async () => {
    const scratch = await mkdtemp(join(tmpdir(), 'kluis-git-check-'))
    const plain = await startGitHttpServer({ root, token: TOKEN })
    try {
      const seed = await createBareRepository(root, 'self-check.git')
      gitIn(scratch, ['clone', '--quiet', seed, 'seed'])
      await writeFile(join(scratch, 'seed', 'README'), 'hello\n')
      gitIn(join(scratch, 'seed'), ['add', 'README'])
      gitIn(join(scratch, 'seed'), ['commit', '--quiet', '-m', 'seed'])
      gitIn(join(scratch, 'seed'), ['push', '--quiet', 'origin', 'main'])

      const auth = (token: string) => ({
        GIT_SSL_CAINFO: server.caFile,
        GIT_CONFIG_COUNT: '1',
        GIT_CONFIG_KEY_0: 'http.extraHeader',
        GIT_CONFIG_VALUE_0: `Authorization: Basic ${Buffer.from(`x-access-token:${token}`).toString('base64')}`,
      })
      for (const [name, url] of [
        ['http', plain.url('self-check.git')],
        ['https', server.url('self-check.git')],
      ] as const) {
        const clone = join(scratch, name)
        await git(scratch, ['clone', '--quiet', url, clone], { env: auth(TOKEN) })
        expect(await readFile(join(clone, 'README'), 'utf8')).toBe('hello\n')
        await writeFile(join(clone, name), `pushed over ${name}\n`)
        gitIn(clone, ['add', name])
        gitIn(clone, ['commit', '--quiet', '-m', `over ${name}`])
        await git(clone, ['pull', '--quiet', '--rebase', 'origin', 'main'], { env: auth(TOKEN) })
        await git(clone, ['push', '--quiet', 'origin', 'main'], { env: auth(TOKEN) })
        expect(gitIn(seed, ['log', '-1', '--format=%s', 'main']).trim()).toBe(`over ${name}`)

        const before = [plain.requests.length, server.requests.length]
        await expect(
          git(scratch, ['clone', '--quiet', url, `${name}-without`], {
            env: { GIT_SSL_CAINFO: server.caFile },
          }),
        ).rejects.toThrow(/401|Authentication|Username/i)
        await expect(
          git(scratch, ['clone', '--quiet', url, `${name}-wrong`], { env: auth(WRONG_TOKEN) }),
        ).rejects.toThrow(/401|Authentication|Username/i)
        const after = [...plain.requests.slice(before[0]), ...server.requests.slice(before[1])]
        expect(after.length).toBeGreaterThan(0)
        expect(after.every((request) => !request.authorized)).toBe(true)
      }
    } finally {
      await plain.stop()
      await rm(scratch, { recursive: true, force: true })
    }
  })

  it('backs up through the server with the token', async () => {
    const result = await run(['backup', '--json'])
    expect(result.stderr).not.toContain('kluis:')
    expect(result.code).toBe(0)
    expect(treeOf(bare, 'app')).toEqual(EXPECTED_TREE_1)
    const pushes = server.requests.filter(
      (request) => request.method === 'POST' && request.path.endsWith('/git-receive-pack'),
    )
    expect(pushes.length).toBeGreaterThan(0)
    expect(pushes.every((request) => request.authorized)).toBe(true)
  })

  it('restores through the server with the token', async () => {
    const result = await run([
      'restore',
      '--source',
      'config',
      '--target',
      'out',
      '--key',
      'keys/reader.key',
    ])
    expect(result.stderr).not.toContain('kluis:')
    expect(result.code).toBe(0)
    expect(await readFile(join(project.dir, 'out', 'config', '.env.production'), 'utf8')).toBe(
      VERSION_1['.env.production'],
    )
  })

  it('a wrong token fails with one clear error line that does not contain it', async () => {
    const count = commitCount(bare)
    await writeFile(join(project.dir, 'deploy/app.yml'), 'replicas: 4\n')
    const result = await run(['backup'], WRONG_TOKEN)
    expectOneClearError(result)
    // The message (the hint aside) says that authentication failed, not something else.
    const message = result.stderr.slice(result.stderr.indexOf('kluis:')).split('\n  hint:')[0]
    expect(message).toMatch(/authenticat|401|denied|refused|rejected|unauthori[sz]ed/i)
    for (const form of [...leakForms(TOKEN), ...leakForms(WRONG_TOKEN)]) {
      expect(result.stdout + result.stderr).not.toContain(form)
    }
    expect(commitCount(bare)).toBe(count)
  })

  it('the token appears in no output, no argv, and no file of the project or the repository', async () => {
    const forms = [...leakForms(TOKEN), ...leakForms(WRONG_TOKEN)]
    for (const output of outputs) {
      for (const form of forms) expect(output.stdout + output.stderr).not.toContain(form)
    }
    // The watcher did see the git processes (so an empty result below means something).
    expect(argv.some((line) => /^(\S*\/)?git(-remote-https?)? /.test(line))).toBe(true)
    for (const line of argv) {
      for (const form of forms) expect(line).not.toContain(form)
    }
    expect(await filesContaining(bare, forms)).toEqual([])
    expect(await filesContaining(project.dir, forms)).toEqual([])
    // A clone kluis left in the system's temporary folder (it should use KLUIS_TMPDIR).
    for (const entry of await readdir(tmpdir())) {
      for (const config of ['.git/config', 'config']) {
        const text = await readFile(join(tmpdir(), entry, config), 'utf8').catch(() => '')
        for (const form of forms) expect(text, join(entry, config)).not.toContain(form)
      }
    }
  })
})

describe('git-config source: concurrent writers to one backups repository', () => {
  let project: Project
  let root: string
  let server: GitHttpServer | undefined

  /** A commit by someone else, directly in the bare repository (outside `app`). */
  function pushForeignCommit(bare: string, name: string): string {
    const work = join(root, `foreign-${randomBytes(4).toString('hex')}`)
    gitIn(root, ['clone', '--quiet', bare, work])
    gitIn(work, ['symbolic-ref', 'HEAD', 'refs/heads/main'])
    const file = join(work, 'other', `${name}.txt`)
    mkdirSync(dirname(file), { recursive: true })
    writeFileSync(file, `${name}\n`)
    gitIn(work, ['add', '.'])
    gitIn(work, ['commit', '--quiet', '-m', `foreign ${name}`])
    gitIn(work, ['push', '--quiet', 'origin', 'HEAD:main'])
    return gitIn(work, ['rev-parse', 'HEAD']).trim()
  }

  async function seededBare(name: string): Promise<{ bare: string; seed: string }> {
    const bare = await createBareRepository(root, name)
    const seed = pushForeignCommit(bare, 'seed')
    return { bare, seed }
  }

  function expectLinearHistoryContaining(bare: string, commits: string[]) {
    expect(gitIn(bare, ['rev-list', '--merges', 'main']).trim()).toBe('')
    for (const commit of commits) {
      // merge-base --is-ancestor exits 1 (throws) when it is not.
      expect(() => gitIn(bare, ['merge-base', '--is-ancestor', commit, 'main'])).not.toThrow()
    }
  }

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'kluis-git-race-'))
    project = await createProject({ config: '# replaced per test\n' })
    await writeFiles(project.dir, VERSION_1)
  })
  afterAll(async () => {
    await server?.stop()
    await project.cleanup()
    await rm(root, { recursive: true, force: true })
  })

  it('two backups pushing at the same moment both land, one rebased on the other', async () => {
    const { bare, seed } = await seededBare('race.git')
    // The first two pushes wait for each other inside the server, so both were built on the
    // same main and exactly one of them must be turned away and retried.
    const hook = join(bare, 'hooks', 'pre-receive')
    await writeFile(
      hook,
      `#!/bin/sh
cat >/dev/null
slots="$GIT_DIR/race-slots"
mkdir -p "$slots"
i=1
while ! mkdir "$slots/$i" 2>/dev/null; do i=$((i + 1)); done
[ "$i" -gt 2 ] && exit 0
n=0
while [ ! -d "$slots/2" ] && [ "$n" -lt 200 ]; do sleep 0.05; n=$((n + 1)); done
exit 0
`,
    )
    await chmod(hook, 0o755)
    for (const side of ['a', 'b']) {
      await writeFile(
        join(project.dir, `${side}.yml`),
        gitConfigYaml({
          remote: `file://${bare}`,
          directory: `app-${side}`,
          repository: `race-repo-${side}`,
        }),
      )
      const init = await project.run(['init', '--config', `${side}.yml`], kluisEnv(project))
      expect(init.code).toBe(0)
    }
    const [a, b] = await inDirectory(project.dir, () =>
      Promise.all(
        ['a', 'b'].map((side) =>
          project.run(['backup', '--json', '--config', `${side}.yml`], kluisEnv(project)),
        ),
      ),
    )
    expect(a?.stderr).not.toContain('kluis:')
    expect(b?.stderr).not.toContain('kluis:')
    expect(a?.code).toBe(0)
    expect(b?.code).toBe(0)
    // At least three pushes reached the hook: the race happened and the loser retried.
    expect((await readdir(join(bare, 'race-slots'))).length).toBeGreaterThanOrEqual(3)

    expect(treeOf(bare, 'app-a')).toEqual(EXPECTED_TREE_1)
    expect(treeOf(bare, 'app-b')).toEqual(EXPECTED_TREE_1)
    expect(treeOf(bare, 'other')).toEqual(['seed.txt'])
    const subjects = gitIn(bare, ['log', '--format=%s', 'main']).trim().split('\n')
    expect(subjects).toHaveLength(3)
    expect(subjects.filter((s) => s.startsWith('kluis backup '))).toHaveLength(2)
    expectLinearHistoryContaining(bare, [seed])
    for (const [side, result] of [
      ['a', a],
      ['b', b],
    ] as const) {
      const snapshot = JSON.parse(result?.stdout ?? '{}').snapshotId
      const commit = await recordedCommit(project, snapshot, `${side}.yml`)
      expectLinearHistoryContaining(bare, [commit])
      // The recorded commit has this side's files (after the rebase, it is the rebased commit).
      expect(treeOf(bare, `app-${side}`, commit)).toEqual(EXPECTED_TREE_1)
    }
  })

  it('a push turned away because main moved (fetch first) is rebased and retried', async () => {
    const { bare, seed } = await seededBare('moved.git')
    const foreign: string[] = []
    server = await startGitHttpServer({
      root,
      beforeRequest: (request) => {
        // Someone else pushes right before kluis's first push learns where main is.
        if (request.query === 'service=git-receive-pack' && foreign.length === 0) {
          foreign.push(pushForeignCommit(bare, 'meanwhile'))
        }
      },
    })
    await writeFile(
      join(project.dir, 'moved.yml'),
      gitConfigYaml({ remote: server.url('moved.git'), repository: 'moved-repo' }),
    )
    expect((await project.run(['init', '--config', 'moved.yml'], kluisEnv(project))).code).toBe(0)
    const result = await project.run(
      ['backup', '--json', '--config', 'moved.yml'],
      kluisEnv(project),
    )
    expect(result.stderr).not.toContain('kluis:')
    expect(result.code).toBe(0)
    expect(foreign).toHaveLength(1)
    const advertisements = server.requests.filter((r) => r.query === 'service=git-receive-pack')
    expect(advertisements.length).toBeGreaterThanOrEqual(2)
    expectLinearHistoryContaining(bare, [seed, ...foreign])
    expect(treeOf(bare, 'other')).toEqual(['meanwhile.txt', 'seed.txt'])
    expect(treeOf(bare, 'app')).toEqual(EXPECTED_TREE_1)
    const snapshot = JSON.parse(result.stdout).snapshotId
    expect(await recordedCommit(project, snapshot, 'moved.yml')).toBe(
      gitIn(bare, ['rev-parse', 'main']).trim(),
    )
    await server.stop()
    server = undefined
  })

  it('gives up after a bounded number of rejected pushes, with a clear error, forcing nothing', async () => {
    const { bare } = await seededBare('busy.git')
    const foreign: string[] = []
    server = await startGitHttpServer({
      root,
      beforeRequest: (request) => {
        // A writer that always wins: main moves before every push of kluis.
        if (request.query === 'service=git-receive-pack') {
          foreign.push(pushForeignCommit(bare, `busy-${foreign.length}`))
        }
      },
    })
    await writeFile(
      join(project.dir, 'busy.yml'),
      gitConfigYaml({ remote: server.url('busy.git'), repository: 'busy-repo' }),
    )
    expect((await project.run(['init', '--config', 'busy.yml'], kluisEnv(project))).code).toBe(0)
    const started = Date.now()
    const result = await project.run(['backup', '--config', 'busy.yml'], kluisEnv(project))
    const line = expectOneClearError(result)
    expect(line).toMatch(/push|reject/i)
    // "retry up to 5 times": 6 attempts; allow a little slack, but it must be bounded.
    expect(foreign.length).toBeGreaterThanOrEqual(2)
    expect(foreign.length).toBeLessThanOrEqual(8)
    expect(gitIn(bare, ['rev-parse', 'main']).trim()).toBe(foreign.at(-1))
    expectLinearHistoryContaining(bare, foreign)
    expect(treeOf(bare, 'app')).toEqual([])
    expect(Date.now() - started).toBeLessThan(30_000)
    await server.stop()
    server = undefined
  }, 60_000)
})
