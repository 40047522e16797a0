import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openRepository } from '../src/commands/common.js'
import type { RestoreTestResult } from '../src/commands/restore-test.js'
import { selectSnapshot } from '../src/commands/select-snapshot.js'
import { loadConfig } from '../src/config/config.js'
import {
  loadReaderKeys,
  loadReaderPrivateKeys,
  loadWriterKey,
  loadWriterPublicKey,
} from '../src/config/key-material.js'
import { newSnapshotId } from '../src/repository/repository.js'
import { type MariadbServer, mariadbAvailable, startMariadb } from './support/mariadb-server.js'
import { type PostgresServer, postgresBinDir, startPostgres } from './support/postgres-server.js'
import { createProject, exampleConfig, type Project } from './support/project.js'

/**
 * `kluis restore-test` restores every source into a scratch target, verifies it, removes the
 * target, and fails (naming what) on corrupt data or a missed objective.
 */
const SCRATCH_CONFIG = `${exampleConfig}restore-test: { postgres-url: "\${RESTORE_TEST_PG_URL}", mysql-url: "\${RESTORE_TEST_MYSQL_URL}" }\n`

describe('restore-test', () => {
  let project: Project
  let env: NodeJS.ProcessEnv
  const scratch = () => join(project.dir, 'scratch')
  const repo = () => join(project.dir, 'backup-repo')

  function restoreTest(...args: string[]) {
    return project.run(['restore-test', '--key', 'keys/reader.key', ...args], env)
  }

  async function expectNoScratchLeft() {
    expect(await readdir(scratch())).toEqual([])
  }

  beforeAll(async () => {
    project = await createProject({ config: SCRATCH_CONFIG })
    await mkdir(join(project.dir, 'scratch'))
    env = { KLUIS_TMPDIR: join(project.dir, 'scratch') }
    expect((await project.run(['init'], env)).code).toBe(0)
    expect((await project.run(['backup'], env)).code).toBe(0)
  })
  afterAll(() => project.cleanup())

  it('passes for sqlite and files sources, writes the report and leaves no scratch behind', async () => {
    // An unset ${VAR} in restore-test: bothers no other command.
    expect((await project.run(['snapshots'], env)).code).toBe(0)

    const run = await restoreTest('--report', 'report.json', '--json')
    expect(run.stderr).not.toContain('kluis:')
    expect(run.code).toBe(0)
    const result = JSON.parse(run.stdout) as RestoreTestResult
    const report = JSON.parse(await readFile(join(project.dir, 'report.json'), 'utf8'))
    expect(report).toEqual(result)
    expect(result.passed).toBe(true)
    expect(result.failures).toEqual([])
    expect(result.sources.map((s) => [s.name, s.type, s.passed])).toEqual([
      ['app-db', 'sqlite', true],
      ['uploads', 'files', true],
    ])
    for (const source of result.sources) {
      expect(source.seconds).toBeGreaterThan(0)
      expect(source.snapshot).toBe(result.snapshot.id)
    }
    const sum = result.sources.reduce((total, s) => total + s.seconds, 0)
    expect(result.rtoSeconds).toBeCloseTo(sum, 6)
    expect(result.rpoHours).toBeGreaterThanOrEqual(0)
    expect(result.rpoHours).toBeLessThan(1)
    expect(result.objectives).toEqual({})
    await expectNoScratchLeft()

    const text = await restoreTest()
    expect(text.code).toBe(0)
    expect(text.stdout).toMatch(/app-db\s+sqlite/)
    expect(text.stdout).toMatch(/uploads\s+files/)
    expect(text.stdout).toContain('RTO demonstrated:')
    expect(text.stdout).toContain(
      `restore test of snapshot ${result.snapshot.id.slice(0, 8)} passed`,
    )
    await expectNoScratchLeft()
  })

  it('fails on a corrupted chunk, naming the object, and removes the scratch target', async () => {
    const index = await readFile(join(repo(), 'snapshots', `${await latestId()}.json.asc`), 'utf8')
    const json = JSON.parse(index.slice(index.indexOf('{'), index.lastIndexOf('}') + 1))
    const id = json.sources.find((s: { name: string }) => s.name === 'uploads').streams[0]
      .chunks[0][0] as string
    const chunk = `chunks/${id.slice(0, 2)}/${id}`
    const path = join(repo(), chunk)
    const original = await readFile(path)
    const changed = Buffer.from(original)
    const at = changed.length - 30
    changed[at] = (changed[at] as number) ^ 0x01
    await writeFile(path, changed)
    try {
      const run = await restoreTest('--report', 'bad.json', '--json')
      expect(run.code).toBe(1)
      expect(run.stderr).toContain('restore-test found 1 failure(s)')
      const result = JSON.parse(run.stdout) as RestoreTestResult
      expect(result.passed).toBe(false)
      const uploads = result.sources.find((s) => s.name === 'uploads')
      expect(uploads?.passed).toBe(false)
      expect(uploads?.detail).toContain(chunk)
      expect(result.sources.find((s) => s.name === 'app-db')?.passed).toBe(true)
      expect(result.failures).toHaveLength(1)
      expect(result.failures[0]).toContain('source uploads')
      expect(result.failures[0]).toContain(chunk)
      // The report is written for a failed test too.
      expect(JSON.parse(await readFile(join(project.dir, 'bad.json'), 'utf8'))).toEqual(result)

      const text = await restoreTest()
      expect(text.code).toBe(1)
      expect(text.stdout).toMatch(/uploads\s+files\s+\S+\s+\S+.*FAILED/)
      expect(text.stdout).toContain(`error: source uploads`)
      await expectNoScratchLeft()
    } finally {
      await writeFile(path, original)
    }
  })

  it('cannot pass when the data lacks what the manifest recorded: rows dropped, a file gone', async () => {
    // A snapshot signed by the writer whose facts promise more than its streams hold: as if
    // rows were deleted after they were counted, and a file fell out of the tar stream.
    const config = await loadConfig(join(project.dir, 'kluis.yml'), env)
    const writer = await loadWriterPublicKey(config)
    const repository = await openRepository(config, env)
    const latest = await selectSnapshot(repository, writer, {})
    const readerKeys = await loadReaderPrivateKeys([join(project.dir, 'keys', 'reader.key')], env)
    const manifest = await repository.readManifest(latest, 'default', readerKeys, writer)
    const id = newSnapshotId()
    const forged = structuredClone(manifest)
    forged.snapshot = id
    const database = forged.sources.find((s) => s.name === 'app-db')?.facts as {
      tables: Record<string, number>
    }
    const rows = database.tables.users as number
    database.tables.users = rows + 1
    const files = forged.sources.find((s) => s.name === 'uploads')?.facts as {
      entries: Array<{ path: string; type: string }>
    }
    const file = files.entries.find((entry) => entry.type === 'file')
    files.entries.push({ ...file, path: 'docs/removed.txt' } as { path: string; type: string })
    await repository.writeSnapshot(
      {
        kluis: 'snapshot-index',
        version: 1,
        id,
        time: new Date().toISOString(),
        host: latest.host,
        sources: latest.sources,
      },
      [{ manifest: forged, readers: await loadReaderKeys(config, 'default') }],
      await loadWriterKey(config, env),
    )
    // The forged snapshot is removed again: the tests after this one use the real ones.
    const run = await restoreTest('--snapshot', id, '--json').finally(async () => {
      await repository.storage.delete(`snapshots/${id}.json.asc`)
      await repository.storage.delete(`snapshots/${id}.default.manifest.pgp`)
    })
    expect(run.code).toBe(1)
    const result = JSON.parse(run.stdout) as RestoreTestResult
    expect(result.passed).toBe(false)
    const failures = result.failures.join('\n')
    expect(failures).toContain(
      `table users has ${rows} rows after restore, the backup recorded ${rows + 1}`,
    )
    expect(failures).toContain('docs/removed.txt: missing from the restored stream')
    await expectNoScratchLeft()
  })

  it('fails when the newest snapshot is older than the RPO objective, passes within it', async () => {
    const other = await createProject({
      config: `${exampleConfig}objectives: { rpo: 1h, rto: 1h }\n`,
    })
    try {
      const otherEnv = { KLUIS_TMPDIR: join(other.dir, 'scratch') }
      await mkdir(otherEnv.KLUIS_TMPDIR)
      expect((await other.run(['init'], otherEnv)).code).toBe(0)
      const threeHoursAgo = new Date(Date.now() - 3 * 3_600_000).toISOString()
      expect((await other.run(['backup', '--time', threeHoursAgo], otherEnv)).code).toBe(0)

      const late = await other.run(['restore-test', '--key', 'keys/reader.key', '--json'], otherEnv)
      expect(late.code).toBe(1)
      const result = JSON.parse(late.stdout) as RestoreTestResult
      expect(result.sources.every((s) => s.passed)).toBe(true)
      expect(result.rpoHours).toBeGreaterThan(2.9)
      expect(result.rpoHours).toBeLessThan(3.1)
      expect(result.objectives).toEqual({ rpo: 1, rto: 3600 })
      expect(result.failures).toHaveLength(2) // app-db and uploads
      for (const failure of result.failures) expect(failure).toMatch(/older than 1h.*\(RPO/)

      await writeFile(
        join(other.dir, 'kluis.yml'),
        `${exampleConfig}objectives: { rpo: 24h, rto: 1h }\n`,
      )
      const inTime = await other.run(['restore-test', '--key', 'keys/reader.key'], otherEnv)
      expect(inTime.stdout).toContain('passed')
      expect(inTime.code).toBe(0)
      expect(await readdir(otherEnv.KLUIS_TMPDIR)).toEqual([])
    } finally {
      await other.cleanup()
    }
  })

  it('also tests a random older snapshot', async () => {
    const first = JSON.parse((await project.run(['snapshots', '--json'], env)).stdout) as Array<{
      id: string
    }>
    expect((await project.run(['backup'], env)).code).toBe(0)
    const run = await restoreTest('--also-random-older', '--json')
    expect(run.code).toBe(0)
    const result = JSON.parse(run.stdout) as RestoreTestResult
    expect(result.older?.id).toBeDefined()
    expect(first.map((s) => s.id)).toContain(result.older?.id)
    expect(result.older?.id).not.toBe(result.snapshot.id)
    expect(result.sources).toHaveLength(4)
    expect(result.sources.filter((s) => s.snapshot === result.older?.id)).toHaveLength(2)
    // The RTO is the chosen snapshot's restore, not the extra one's.
    const chosen = result.sources.filter((s) => s.snapshot === result.snapshot.id)
    expect(result.rtoSeconds).toBeCloseTo(
      chosen.reduce((total, s) => total + s.seconds, 0),
      6,
    )
    await expectNoScratchLeft()
  })

  async function latestId(): Promise<string> {
    const listed = JSON.parse((await project.run(['snapshots', '--json'], env)).stdout) as Array<{
      id: string
      time: string
    }>
    return (listed.sort((a, b) => a.time.localeCompare(b.time)).at(-1) as { id: string }).id
  }
})

const describeWithPostgres =
  postgresBinDir() !== undefined || process.env.CI ? describe : describe.skip

describeWithPostgres('restore-test of a postgres source', () => {
  let server: PostgresServer
  let project: Project
  let env: NodeJS.ProcessEnv

  beforeAll(async () => {
    server = await startPostgres()
    server.sql('postgres', 'CREATE DATABASE shop')
    server.sql(
      'shop',
      'CREATE TABLE orders (id int PRIMARY KEY, note text); INSERT INTO orders SELECT i, md5(i::text) FROM generate_series(1, 500) i',
    )
    project = await createProject({
      config: `repository: ./repo
keys: { readers: [keys/reader.asc], writer: keys/writer.key, writer-public: keys/writer.asc }
sources:
  - { name: shop, type: postgres, url: "\${DATABASE_URL}" }
  - { name: app-db, type: sqlite, path: data/app.db }
restore-test: { postgres-url: "\${RESTORE_TEST_PG_URL}" }
`,
    })
    await mkdir(join(project.dir, 'scratch'))
    env = { DATABASE_URL: server.url('shop'), KLUIS_TMPDIR: join(project.dir, 'scratch') }
    expect((await project.run(['init'], env)).code).toBe(0)
    const backup = await project.run(['backup'], env)
    expect(backup.stderr).not.toContain('kluis:')
    expect(backup.code).toBe(0)
  }, 120_000)

  afterAll(async () => {
    await server?.stop()
    await project?.cleanup()
  })

  const scratchDatabases = () =>
    server.sql(
      'postgres',
      "SELECT count(*) FROM pg_database WHERE datname LIKE 'kluis\\_restore\\_test\\_%'",
    )

  it('fails the postgres source, naming the setting, without a scratch server', async () => {
    const run = await project.run(['restore-test', '--key', 'keys/reader.key', '--json'], env)
    expect(run.code).toBe(1)
    const result = JSON.parse(run.stdout) as RestoreTestResult
    expect(result.sources.find((s) => s.name === 'app-db')?.passed).toBe(true)
    expect(result.failures).toEqual([
      expect.stringMatching(/^source shop .*RESTORE_TEST_PG_URL.*restore-test\.postgres-url/),
    ])
  })

  it('restores into a new database on the scratch server, checks row counts, and drops it', async () => {
    const run = await project.run(['restore-test', '--key', 'keys/reader.key', '--json'], {
      ...env,
      RESTORE_TEST_PG_URL: server.url('postgres'),
    })
    expect(run.stderr).not.toContain('kluis:')
    expect(run.code).toBe(0)
    const result = JSON.parse(run.stdout) as RestoreTestResult
    const shop = result.sources.find((s) => s.name === 'shop')
    expect(shop?.passed).toBe(true)
    expect(shop?.detail).toMatch(/database kluis_restore_test_[0-9a-f]{8} .*row counts match/)
    expect(shop?.seconds).toBeGreaterThan(0)
    expect(scratchDatabases()).toBe('0')
    expect(await readdir(join(project.dir, 'scratch'))).toEqual([])
    // The source database itself is untouched.
    expect(server.sql('shop', 'SELECT count(*) FROM orders')).toBe('500')
  })

  it('fails on a corrupted chunk of the dump, naming it, and leaves no scratch database', async () => {
    const listed = JSON.parse((await project.run(['snapshots', '--json'], env)).stdout) as Array<{
      id: string
    }>
    const latest = listed.at(-1)?.id as string
    const index = await readFile(
      join(project.dir, 'repo', 'snapshots', `${latest}.json.asc`),
      'utf8',
    )
    const json = JSON.parse(index.slice(index.indexOf('{'), index.lastIndexOf('}') + 1))
    const id = json.sources.find((s: { name: string }) => s.name === 'shop').streams[0]
      .chunks[0][0] as string
    const chunk = `chunks/${id.slice(0, 2)}/${id}`
    const path = join(project.dir, 'repo', chunk)
    const original = await readFile(path)
    const changed = Buffer.from(original)
    const at = changed.length - 30
    changed[at] = (changed[at] as number) ^ 0x01
    await writeFile(path, changed)
    try {
      const run = await project.run(['restore-test', '--key', 'keys/reader.key', '--json'], {
        ...env,
        RESTORE_TEST_PG_URL: server.url('postgres'),
      })
      expect(run.code).toBe(1)
      const result = JSON.parse(run.stdout) as RestoreTestResult
      expect(result.failures).toEqual([expect.stringMatching(/^source shop .*chunks\//)])
      expect(result.failures[0]).toContain(chunk)
      expect(scratchDatabases()).toBe('0')
      expect(await readdir(join(project.dir, 'scratch'))).toEqual([])
    } finally {
      await writeFile(path, original)
    }
  })
})

describe.skipIf(!mariadbAvailable() && !process.env.CI)('restore-test of a mysql source', () => {
  let server: MariadbServer
  let project: Project
  let env: NodeJS.ProcessEnv

  beforeAll(async () => {
    server = await startMariadb()
    server.sql('', 'CREATE DATABASE shop')
    server.sql(
      'shop',
      'CREATE TABLE orders (id INT PRIMARY KEY, note TEXT); INSERT INTO orders SELECT seq, MD5(seq) FROM seq_1_to_300',
    )
    project = await createProject({
      config: `repository: ./repo
keys: { readers: [keys/reader.asc], writer: keys/writer.key, writer-public: keys/writer.asc }
sources:
  - { name: shop, type: mysql, url: "\${DATABASE_URL}" }
restore-test: { mysql-url: "\${RESTORE_TEST_MYSQL_URL}" }
`,
    })
    await mkdir(join(project.dir, 'scratch'))
    env = {
      DATABASE_URL: server.url('shop'),
      RESTORE_TEST_MYSQL_URL: server.url(),
      PATH: process.env.PATH,
      KLUIS_TMPDIR: join(project.dir, 'scratch'),
    }
    expect((await project.run(['init'], env)).code).toBe(0)
    const backup = await project.run(['backup'], env)
    expect(backup.stderr).not.toContain('kluis:')
    expect(backup.code).toBe(0)
  }, 120_000)

  afterAll(async () => {
    await project?.cleanup()
    await server?.stop()
  })

  it('restores into a new database on the scratch server, checks row counts, and drops it', async () => {
    const run = await project.run(['restore-test', '--key', 'keys/reader.key', '--json'], env)
    expect(run.stderr).not.toContain('kluis:')
    expect(run.code).toBe(0)
    const result = JSON.parse(run.stdout) as RestoreTestResult
    expect(result.sources).toEqual([
      expect.objectContaining({ name: 'shop', type: 'mysql', passed: true }),
    ])
    expect(result.sources[0]?.detail).toMatch(/kluis_restore_test_[0-9a-f]{8}/)
    expect(
      server.sql(
        '',
        "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE 'kluis\\_restore\\_test\\_%'",
      ),
    ).toBe('0')
    expect(await readdir(join(project.dir, 'scratch'))).toEqual([])
    expect(server.sql('shop', 'SELECT COUNT(*) FROM orders')).toBe('300')
  })
})
