import { createHash } from 'node:crypto'
import {
  appendFile,
  chmod,
  lstat,
  mkdir,
  readFile,
  readlink,
  stat,
  symlink,
  utimes,
  writeFile,
} from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { generateKeys } from '../src/commands/keys.js'
import { createProject, exampleConfig, type Project, sqlite } from './support/project.js'

const sha256 = async (file: string) =>
  createHash('sha256')
    .update(await readFile(file))
    .digest('hex')

describe('backup and restore with the example configuration', () => {
  let project: Project
  beforeAll(async () => {
    project = await createProject()
    const uploads = join(project.dir, 'data', 'uploads')
    await writeFile(join(uploads, 'run.sh'), '#!/bin/sh\necho hi\n')
    await chmod(join(uploads, 'run.sh'), 0o750)
    await writeFile(join(uploads, 'ñandú 日本語.txt'), 'unicode name\n')
    await mkdir(join(uploads, 'empty-dir'))
    await symlink('docs/readme.txt', join(uploads, 'link-to-readme'))
    await utimes(join(uploads, 'docs', 'readme.txt'), 1_700_000_000, 1_700_000_000)
    expect((await project.run(['init'])).code).toBe(0)
  })
  afterAll(() => project.cleanup())

  it('restores the database and the folder exactly as they were', async () => {
    const backup = await project.run(['backup', '--json'])
    expect(backup.stderr).not.toContain('error')
    expect(backup.code).toBe(0)
    const result = JSON.parse(backup.stdout)
    expect(result.snapshotId).toMatch(/^[0-9a-f]{32}$/)
    expect(result.sources.map((s: { name: string }) => s.name)).toEqual(['app-db', 'uploads'])

    const restored = await project.run(['restore', '--target', 'out', '--key', 'keys/reader.key'])
    expect(restored.stderr).not.toContain('kluis:') // no error line
    expect(restored.code).toBe(0)

    const out = join(project.dir, 'out')
    const rows = sqlite(join(out, 'app-db', 'app.db'), [
      'SELECT count(*), sum(length(bio)) FROM users',
    ])
    expect(rows.trim()).toBe('2000|400000')
    const uploads = join(project.dir, 'data', 'uploads')
    for (const name of ['docs/readme.txt', 'run.sh', 'ñandú 日本語.txt']) {
      expect(await sha256(join(out, 'uploads', name))).toBe(await sha256(join(uploads, name)))
    }
    expect((await stat(join(out, 'uploads', 'run.sh'))).mode & 0o7777).toBe(0o750)
    expect((await stat(join(out, 'uploads', 'docs', 'readme.txt'))).mtimeMs).toBe(1_700_000_000_000)
    expect((await stat(join(out, 'uploads', 'empty-dir'))).isDirectory()).toBe(true)
    expect(await readlink(join(out, 'uploads', 'link-to-readme'))).toBe('docs/readme.txt')
    await expect(lstat(join(out, 'uploads', 'scratch.tmp'))).rejects.toThrow() // excluded
  })

  it('lists snapshots, as a table and as JSON', async () => {
    const table = await project.run(['snapshots'])
    expect(table.code).toBe(0)
    expect(table.stdout).toMatch(/ID\s+Time \(UTC\)\s+Host\s+Sources\s+Size/)
    expect(table.stdout).toContain('app-db, uploads')
    const json = JSON.parse((await project.run(['snapshots', '--json'])).stdout)
    expect(json.length).toBeGreaterThan(0)
    expect(json[0].sources.map((s: { name: string }) => s.name)).toEqual(['app-db', 'uploads'])
  })

  it('a second backup of unchanged data adds less than 1% of its size', async () => {
    const second = JSON.parse((await project.run(['backup', '--json'])).stdout)
    expect(second.bytesTotal).toBeGreaterThan(0)
    expect(second.dataAdded).toBe(0)
    expect(second.bytesAdded / second.bytesTotal).toBeLessThan(0.01)
  })

  it('restores one source of a chosen snapshot or point in time', async () => {
    const [first] = JSON.parse((await project.run(['snapshots', '--json'])).stdout)
    const bySnapshot = await project.run([
      'restore',
      '--snapshot',
      first.id.slice(0, 8),
      '--source',
      'uploads',
      '--target',
      'only-uploads',
      '--key',
      'keys/reader.key',
    ])
    expect(bySnapshot.code).toBe(0)
    expect(
      await readFile(join(project.dir, 'only-uploads', 'uploads', 'docs', 'readme.txt'), 'utf8'),
    ).toBe('hello uploads\n')
    await expect(stat(join(project.dir, 'only-uploads', 'app-db'))).rejects.toThrow()

    const atFirst = await project.run([
      'restore',
      '--at',
      first.time,
      '--target',
      'at-first',
      '--key',
      'keys/reader.key',
      '--json',
    ])
    expect(atFirst.code).toBe(0)
    expect(JSON.parse(atFirst.stdout).snapshotId).toBe(first.id)
    const tooEarly = await project.run([
      'restore',
      '--at',
      '2001-01-01T00:00:00Z',
      '--target',
      'x',
      '--key',
      'keys/reader.key',
    ])
    expect(tooEarly.code).toBe(2)
    expect(tooEarly.stderr).toContain('no snapshot at or before 2001-01-01T00:00:00.000Z')
  })

  it('refuses a non-empty target unless --force, and --force replaces the restored sources', async () => {
    const target = join(project.dir, 'busy')
    await mkdir(join(target, 'uploads'), { recursive: true })
    await writeFile(join(target, 'uploads', 'stale.txt'), 'old')
    const refused = await project.run(['restore', '--target', 'busy', '--key', 'keys/reader.key'])
    expect(refused.code).toBe(1)
    expect(refused.stderr).toContain('is not empty')
    expect(refused.stderr).toContain('--force')
    const forced = await project.run([
      'restore',
      '--target',
      'busy',
      '--key',
      'keys/reader.key',
      '--force',
    ])
    expect(forced.code).toBe(0)
    await expect(stat(join(target, 'uploads', 'stale.txt'))).rejects.toThrow()
    expect(await readFile(join(target, 'uploads', 'docs', 'readme.txt'), 'utf8')).toBe(
      'hello uploads\n',
    )
  })
})

describe('incremental backups', () => {
  let project: Project
  beforeAll(async () => {
    project = await createProject()
    expect((await project.run(['init'])).code).toBe(0)
  })
  afterAll(() => project.cleanup())

  it('after changing 1% of the rows and 1% of the files, adds at most a few percent', async () => {
    // Enough data that 1% spans less than a chunk: 100 files of 512 KiB, a ~60 MiB database.
    const bulk = join(project.dir, 'data', 'uploads', 'bulk')
    await mkdir(bulk, { recursive: true })
    for (let i = 0; i < 100; i++) {
      await writeFile(join(bulk, `f${String(i).padStart(3, '0')}.bin`), pseudoRandom(512 * 1024, i))
    }
    const database = join(project.dir, 'data', 'app.db')
    sqlite(database, [
      "INSERT INTO users(name, bio) SELECT 'bulk ' || value, randomblob(300) FROM generate_series(1, 200000)",
    ])
    const base = JSON.parse((await project.run(['backup', '--json'])).stdout)
    expect(base.bytesTotal).toBeGreaterThan(100 * 1024 * 1024)

    // 1% of the rows (a range of ids: an application's recent records) and 1 file in 100.
    sqlite(database, [
      "UPDATE users SET name = name || ' changed' WHERE id BETWEEN 100000 AND 102020",
    ])
    await appendFile(join(bulk, 'f042.bin'), 'changed')
    const changed = JSON.parse((await project.run(['backup', '--json'])).stdout)
    // Seen: 3–7% for the database (its header page, the changed range and pages split by the
    // longer rows each cost a ~1 MiB chunk), ~2% for the files. A full copy would be 100%.
    for (const source of changed.sources) {
      expect(source.dataAdded / source.size, source.name).toBeLessThan(0.1)
    }
    expect(changed.bytesAdded / changed.bytesTotal).toBeLessThan(0.1)
  })
})

/** Deterministic incompressible bytes (so dedup, not compression, is what the test sees). */
function pseudoRandom(size: number, seed: number): Buffer {
  const out = Buffer.alloc(size)
  let block = createHash('sha256').update(`seed ${seed}`).digest()
  for (let offset = 0; offset < size; offset += 32) {
    block.copy(out, offset)
    block = createHash('sha256').update(block).digest()
  }
  return out
}

describe('key groups', () => {
  let project: Project
  beforeAll(async () => {
    const config = exampleConfig
      .replace(
        'writer-public: keys/writer.asc',
        'writer-public: keys/writer.asc\n  groups: { database: { readers: [dba/reader.asc] } }',
      )
      .replace('path: data/app.db }', 'path: data/app.db, group: database }')
    project = await createProject({ config })
    await generateKeys({ out: join(project.dir, 'dba'), kind: 'ecc', force: false })
    expect((await project.run(['init'])).code).toBe(0)
    expect((await project.run(['backup'])).code).toBe(0)
  })
  afterAll(() => project.cleanup())

  it("each group's data, manifest and file list are readable only by that group's readers", async () => {
    const dbByDba = await project.run([
      'restore',
      '--source',
      'app-db',
      '--target',
      'dba-out',
      '--key',
      'dba/reader.key',
    ])
    expect(dbByDba.code).toBe(0)
    expect(
      sqlite(join(project.dir, 'dba-out', 'app-db', 'app.db'), [
        'SELECT count(*) FROM users',
      ]).trim(),
    ).toBe('2000')

    const uploadsByDba = await project.run([
      'restore',
      '--source',
      'uploads',
      '--target',
      'x',
      '--key',
      'dba/reader.key',
    ])
    expect(uploadsByDba.code).toBe(1)
    expect(uploadsByDba.stderr).toMatch(
      /none of the given private keys can decrypt snapshots\/\w+\.default\.manifest\.pgp/,
    )

    const dbByDefault = await project.run([
      'restore',
      '--source',
      'app-db',
      '--target',
      'y',
      '--key',
      'keys/reader.key',
    ])
    expect(dbByDefault.code).toBe(1)
    expect(dbByDefault.stderr).toMatch(/database\.manifest\.pgp/)

    const uploadsByDefault = await project.run([
      'restore',
      '--source',
      'uploads',
      '--target',
      'z',
      '--key',
      'keys/reader.key',
    ])
    expect(uploadsByDefault.code).toBe(0)

    const both = await project.run([
      'restore',
      '--target',
      'both',
      '--key',
      'dba/reader.key',
      '--key',
      'keys/reader.key',
    ])
    expect(both.code).toBe(0)
    expect(await readFile(join(project.dir, 'both', 'uploads', 'docs', 'readme.txt'), 'utf8')).toBe(
      'hello uploads\n',
    )
    const checked = await project.run([
      'check',
      '--read-data',
      '--key',
      'dba/reader.key',
      '--key',
      'keys/reader.key',
    ])
    expect(checked.stdout).toContain('no problems found')
  })
})

describe('adding a reader key', () => {
  let project: Project
  beforeAll(async () => {
    project = await createProject()
    expect((await project.run(['init'])).code).toBe(0)
  })
  afterAll(() => project.cleanup())

  it('the new reader reads what is written after it was added; older chunks name themselves', async () => {
    const before = JSON.parse((await project.run(['backup', '--json'])).stdout).snapshotId
    await generateKeys({ out: join(project.dir, 'new'), kind: 'ecc', force: false })
    const configPath = join(project.dir, 'kluis.yml')
    const config = await readFile(configPath, 'utf8')
    await writeFile(
      configPath,
      config.replace('readers: [keys/reader.asc]', 'readers: [keys/reader.asc, new/reader.asc]'),
    )

    // Unchanged data reuses chunks encrypted to the old readers only (rekey is a later feature).
    const unchanged = JSON.parse((await project.run(['backup', '--json'])).stdout).snapshotId
    const reused = await project.run([
      'restore',
      '--snapshot',
      unchanged,
      '--target',
      'x',
      '--key',
      'new/reader.key',
    ])
    expect(reused.code).toBe(1)
    expect(reused.stderr).toMatch(
      /none of the given private keys can decrypt chunks\/[0-9a-f]{2}\/[0-9a-f]{64}/,
    )
    expect(reused.stderr).toContain(
      'a reader added later can read only chunks written after it was added',
    )

    // Changed data: new chunks, the new manifest (with the dedup key), all readable by the new reader.
    sqlite(join(project.dir, 'data', 'app.db'), ["UPDATE users SET name = 'renamed ' || id"])
    await writeFile(join(project.dir, 'data', 'uploads', 'docs', 'readme.txt'), 'hello again\n')
    const after = JSON.parse((await project.run(['backup', '--json'])).stdout).snapshotId
    const byNewReader = await project.run([
      'restore',
      '--snapshot',
      after,
      '--target',
      'new-out',
      '--key',
      'new/reader.key',
    ])
    expect(byNewReader.code).toBe(0)
    expect(
      await readFile(join(project.dir, 'new-out', 'uploads', 'docs', 'readme.txt'), 'utf8'),
    ).toBe('hello again\n')
    expect(
      (
        await project.run([
          'restore',
          '--snapshot',
          after,
          '--target',
          'old-out',
          '--key',
          'keys/reader.key',
        ])
      ).code,
    ).toBe(0)
    expect(
      (
        await project.run([
          'restore',
          '--snapshot',
          before,
          '--target',
          'x',
          '--key',
          'new/reader.key',
        ])
      ).code,
    ).toBe(1)
  })
})

describe('init', () => {
  it('is safe to run again, and adds the keys of a key group added to the configuration', async () => {
    const project = await createProject()
    try {
      expect((await project.run(['init'])).stdout).toContain('created repository at')
      const again = await project.run(['init'])
      expect(again.code).toBe(0)
      expect(again.stderr).toContain('already exists')
      const configPath = join(project.dir, 'kluis.yml')
      const config = (await readFile(configPath, 'utf8'))
        .replace(
          'writer-public: keys/writer.asc',
          'writer-public: keys/writer.asc\n  groups: { database: { readers: [keys/reader.asc] } }',
        )
        .replace('path: data/app.db }', 'path: data/app.db, group: database }')
      await writeFile(configPath, config)
      expect((await project.run(['backup'])).stderr).toContain("no key for key group 'database'")
      expect((await project.run(['init'])).stderr).toContain('added key group(s) database')
      expect((await project.run(['backup'])).code).toBe(0)
    } finally {
      await project.cleanup()
    }
  })
})
