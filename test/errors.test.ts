import { spawnSync } from 'node:child_process'
import { chmod, mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { generateKeys } from '../src/commands/keys.js'
import { type CliRun, createProject, exampleConfig, type Project } from './support/project.js'

const cli = new URL('../dist/cli.js', import.meta.url).pathname

/** One clear line naming the fix (plus an optional hint line), never a stack trace. */
function expectOneClearError(run: CliRun, code: number, ...fragments: string[]) {
  expect(run.code).toBe(code)
  const lines = run.stderr
    .trim()
    .split('\n')
    .filter((line) => line.startsWith('kluis:') || line.startsWith('  hint:'))
  expect(lines[0]).toMatch(/^kluis: /)
  for (const fragment of fragments) expect(run.stderr).toContain(fragment)
  expect(run.stderr).not.toMatch(/\n\s+at .+:\d+:\d+/) // no stack frames
  expect(run.stderr).not.toContain('unexpected error')
}

describe('errors a user can cause', () => {
  let project: Project
  let other: Project
  beforeAll(async () => {
    project = await createProject({ readerPassphrase: 'correct horse battery staple' })
    other = await createProject()
    expect((await project.run(['init'])).code).toBe(0)
    expect((await project.run(['backup'])).code).toBe(0)
  })
  afterAll(async () => {
    await project.cleanup()
    await other.cleanup()
  })

  it('a wrong reader key names the key ids the data is encrypted to', async () => {
    const run = await project.run([
      'restore',
      '--target',
      'out',
      '--key',
      join(other.dir, 'keys', 'reader.key'),
    ])
    expectOneClearError(run, 1, 'none of the given private keys can decrypt', 'KLUIS_READER_KEY')
  })

  it('a missing reader key says how to give one', async () => {
    expectOneClearError(
      await project.run(['restore', '--target', 'out']),
      2,
      'needs a reader private key',
      '--key',
    )
    expectOneClearError(
      await project.run(['restore', '--target', 'out', '--key', 'nope.key']),
      2,
      '--key nope.key does not exist',
    )
  })

  it('a passphrase-protected key without or with a wrong passphrase', async () => {
    const none = await project.run(['restore', '--target', 'out', '--key', 'keys/reader.key'])
    expectOneClearError(none, 1, 'protected by a passphrase', 'KLUIS_READER_PASSPHRASE')
    const wrong = await project.run(['restore', '--target', 'out', '--key', 'keys/reader.key'], {
      KLUIS_READER_PASSPHRASE: 'guess',
    })
    expectOneClearError(wrong, 1, 'passphrase for key file keys/reader.key is wrong')
    expect(wrong.stderr).not.toContain('guess')
  })

  it('the reader key from KLUIS_READER_KEY with KLUIS_READER_PASSPHRASE restores, and neither is printed', async () => {
    const key = await readFile(join(project.dir, 'keys', 'reader.key'), 'utf8')
    const run = await project.run(['restore', '--target', 'from-env'], {
      KLUIS_READER_KEY: key,
      KLUIS_READER_PASSPHRASE: 'correct horse battery staple',
    })
    expect(run.code).toBe(0)
    const output = run.stdout + run.stderr
    expect(output).not.toContain('correct horse')
    expect(output).not.toContain(key.split('\n')[3])
  })

  it('a malformed configuration names the file and the setting', async () => {
    await writeFile(join(other.dir, 'bad.yml'), 'repository: [unclosed\n')
    expectOneClearError(
      await other.run(['snapshots', '--config', 'bad.yml']),
      2,
      'bad.yml is not valid YAML',
    )
    await writeFile(
      join(other.dir, 'bad2.yml'),
      exampleConfig.replace('type: files', 'type: folder'),
    )
    expectOneClearError(await other.run(['snapshots', '--config', 'bad2.yml']), 2, 'sources.1.type')
    await writeFile(
      join(other.dir, 'bad3.yml'),
      exampleConfig.replace('writer-public:', 'writer-pub:'),
    )
    expectOneClearError(await other.run(['snapshots', '--config', 'bad3.yml']), 2, 'writer-pub')
    expectOneClearError(
      await other.run(['snapshots', '--config', 'missing.yml']),
      2,
      'missing.yml does not exist',
    )
  })

  it('an unset ${VAR} names the variable, and only where it is needed', async () => {
    await writeFile(
      join(other.dir, 'env.yml'),
      exampleConfig.replace('keys/writer.key', '${KLUIS_WRITER_KEY}'),
    )
    expectOneClearError(
      await other.run(['backup', '--config', 'env.yml']),
      2,
      'KLUIS_WRITER_KEY is not set (used in keys.writer)',
    )
    // Listing snapshots does not need the writer key.
    expect((await other.run(['snapshots', '--config', 'env.yml'])).stderr).not.toContain(
      'KLUIS_WRITER_KEY',
    )
  })

  it('an unset database URL variable stops only the backup of that source', async () => {
    await writeFile(
      join(project.dir, 'db.yml'),
      `${exampleConfig}  - { name: app, type: postgres, url: "\${DATABASE_URL}" }\n`,
    )
    const restore = [
      'restore',
      '--source',
      'uploads',
      '--target',
      'db-restore',
      '--key',
      'keys/reader.key',
    ]
    const env = { KLUIS_READER_PASSPHRASE: 'correct horse battery staple' }
    // A restore on a laptop needs no source URL.
    expect((await project.run([...restore, '--config', 'db.yml'], env)).code).toBe(0)
    expect((await project.run(['backup', '--source', 'uploads', '--config', 'db.yml'])).code).toBe(
      0,
    )
    expectOneClearError(
      await project.run(['backup', '--config', 'db.yml']),
      2,
      'DATABASE_URL is not set (used in sources.2.url)',
    )
  })

  it('a missing source names the source and its path; nothing is saved', async () => {
    await rm(join(other.dir, 'data', 'app.db'))
    expect((await other.run(['init'])).code).toBe(0)
    expectOneClearError(
      await other.run(['backup']),
      1,
      "source 'app-db': SQLite database data/app.db does not exist",
    )
    expect(JSON.parse((await other.run(['snapshots', '--json'])).stdout)).toEqual([])
  })

  it('bad usage exits 2 with a hint', async () => {
    expectOneClearError(await project.run(['frobnicate']), 2, "unknown command 'frobnicate'")
    expectOneClearError(await project.run(['restore']), 2, 'restore needs --target DIR')
    expectOneClearError(
      await project.run(['backup', '--source', 'nope']),
      2,
      "no source named 'nope'",
      'app-db, uploads',
    )
    expectOneClearError(await project.run(['backup', '--bogus']), 2, "Unknown option '--bogus'")
    expectOneClearError(
      await project.run(['restore', '--target', 'x', '--at', 'yesterday']),
      2,
      "--at 'yesterday' is not a time",
    )
  })

  it('a repository that was never initialised says to run init', async () => {
    const fresh = await createProject()
    try {
      expectOneClearError(
        await fresh.run(['backup']),
        1,
        'there is no kluis repository at',
        'kluis init',
      )
    } finally {
      await fresh.cleanup()
    }
  })

  it('a writer key that does not match keys.writer-public is refused before any work', async () => {
    await generateKeys({ out: join(other.dir, 'stranger'), kind: 'ecc', force: false })
    await writeFile(
      join(other.dir, 'mismatch.yml'),
      exampleConfig.replace('keys/writer.key', 'stranger/writer.key'),
    )
    expectOneClearError(
      await other.run(['backup', '--config', 'mismatch.yml']),
      1,
      'is not the private half of keys.writer-public',
    )
  })

  it('keys generate never overwrites keys', async () => {
    expectOneClearError(
      await project.run(['keys', 'generate', '--out', 'keys']),
      1,
      'already exists',
      '--force',
    )
  })

  it('no private key material appears in any output of a backup', async () => {
    const writerKey = await readFile(join(project.dir, 'keys', 'writer.key'), 'utf8')
    const run = await project.run(['backup', '--json'], { KLUIS_WRITER_KEY: writerKey })
    const body = writerKey.split('\n').filter((line) => line.length > 40)
    for (const line of body) expect(run.stdout + run.stderr).not.toContain(line)
  })

  it('an operating-system error names the path and the cause, not a bug', async () => {
    const run = await project.run(
      ['restore', '--target', 'data/app.db/sub/out', '--key', 'keys/reader.key'],
      {
        KLUIS_READER_PASSPHRASE: 'correct horse battery staple',
      },
    )
    expectOneClearError(run, 1, 'data/app.db/sub', 'not a directory (ENOTDIR)')
  })

  it('a folder the backup user cannot read fails the backup, naming it; no snapshot is saved', async () => {
    // Root reads everything, so as root the backup runs as `nobody` (the CI machine is root).
    const fresh = await createProject()
    try {
      expect((await fresh.run(['init'])).code).toBe(0)
      await mkdir(join(fresh.dir, 'data', 'uploads', 'locked'))
      await writeFile(join(fresh.dir, 'data', 'uploads', 'locked', 'secret.txt'), 'x')
      const asRoot = process.getuid?.() === 0
      if (asRoot) spawnSync('chown', ['-R', 'nobody', fresh.dir])
      await chmod(fresh.dir, 0o755)
      await chmod(join(fresh.dir, 'data', 'uploads', 'locked'), 0)
      const command = [process.execPath, cli, 'backup', '--config', 'kluis.yml']
      const run = asRoot
        ? spawnSync('runuser', ['-u', 'nobody', '--', ...command], {
            cwd: fresh.dir,
            encoding: 'utf8',
          })
        : spawnSync(command[0] as string, command.slice(1), { cwd: fresh.dir, encoding: 'utf8' })
      expectOneClearError(
        { code: run.status ?? -1, stdout: run.stdout, stderr: run.stderr },
        1,
        'cannot read directory',
        'locked',
      )
      await chmod(join(fresh.dir, 'data', 'uploads', 'locked'), 0o755)
      expect(JSON.parse((await fresh.run(['snapshots', '--json'])).stdout)).toEqual([])
    } finally {
      await fresh.cleanup()
    }
  })
})
