import { spawn, spawnSync } from 'node:child_process'
import { chmod, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { postgresTool } from '../src/sources/database/postgres-tools.js'
import { type PostgresServer, postgresBinDir, startPostgres } from './support/postgres-server.js'
import { type CliRun, createProject, latestFacts, type Project } from './support/project.js'

/**
 * The PostgreSQL source against real servers: a throwaway PostgreSQL cluster holds the data,
 * a second one receives a whole-server restore.
 */
const available = postgresBinDir() !== undefined
if (!available && !process.env.CI) {
  console.warn('skipping PostgreSQL tests: apt-get install postgresql')
}
const emergencyScript = fileURLToPath(new URL('../scripts/emergency-restore.sh', import.meta.url))
const describeWithPostgres = available || process.env.CI ? describe : describe.skip

const CONFIG = `repository: ./repo
keys: { readers: [keys/reader.asc], writer: keys/writer.key, writer-public: keys/writer.asc }
sources:
  - { name: app, type: postgres, url: "\${DATABASE_URL}" }
  - { name: all-pg, type: postgres, url: "\${PG_ADMIN_URL}", databases: all, globals: true }
`

/** Every awkward case the issue names, in one database. */
const DATA_SET = String.raw`
CREATE ROLE app_owner LOGIN PASSWORD 'owner secret';
CREATE TABLE kinds (id bigserial PRIMARY KEY, raw bytea, doc jsonb, tags text[], note text,
  amount numeric(12, 2), at timestamptz);
INSERT INTO kinds (raw, doc, tags, note, amount, at) VALUES
  ((SELECT decode(string_agg(lpad(to_hex(b), 2, '0'), '' ORDER BY b), 'hex') FROM generate_series(0, 255) b),
   '{"emoji": "😀", "nested": {"a": [1, 2, null]}, "quote": "it''s"}',
   ARRAY['ü', '漢字', '🦀', NULL], E'Grüße 👋 ñ\nsecond line\ttab', 12.34, '2026-11-25 10:00+00'),
  (NULL, NULL, NULL, NULL, NULL, NULL);
ALTER TABLE kinds OWNER TO app_owner;
CREATE TABLE big (id int PRIMARY KEY, payload text);
INSERT INTO big SELECT i, md5(i::text) FROM generate_series(1, 1000000) i;
CREATE SEQUENCE invoice_no START 1000;
SELECT nextval('invoice_no'), nextval('invoice_no');
CREATE VIEW kinds_with_notes AS SELECT id, note FROM kinds WHERE note IS NOT NULL;
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.at := now(); RETURN NEW; END $$;
CREATE TRIGGER kinds_touch BEFORE UPDATE ON kinds FOR EACH ROW EXECUTE FUNCTION touch();
SELECT lo_from_bytea(0, convert_to('large object 📦', 'UTF8'));
CREATE SCHEMA "odd ""schema""";
CREATE TABLE "odd ""schema""".";weird" (x int);
INSERT INTO "odd ""schema""".";weird" VALUES (1), (2), (NULL);
CREATE TABLE events (id bigserial PRIMARY KEY, at timestamptz DEFAULT clock_timestamp());
CREATE PROCEDURE write_events(n int) LANGUAGE plpgsql AS $$
BEGIN
  FOR i IN 1..n LOOP INSERT INTO events DEFAULT VALUES; COMMIT; PERFORM pg_sleep(0.002); END LOOP;
END $$;
`

describeWithPostgres('postgres source', () => {
  let server: PostgresServer
  let project: Project
  let env: NodeJS.ProcessEnv
  /** Every run's output, checked for the password at the end. */
  const outputs: CliRun[] = []

  async function run(args: string[], extraEnv: NodeJS.ProcessEnv = {}): Promise<CliRun> {
    const result = await project.run(args, { ...env, ...extraEnv })
    outputs.push(result)
    return result
  }

  /** A plain re-dump, which is the same text for the same content (the random \restrict key aside). */
  function redump(target: PostgresServer, database: string): string {
    const result = spawnSync(
      join(postgresBinDir() as string, 'pg_dump'),
      ['--no-password', `--dbname=${target.url(database).replace(/:[^:@/]*@/, '@')}`],
      {
        env: { ...process.env, PGPASSWORD: target.password },
        encoding: 'utf8',
        maxBuffer: 512 * 1024 * 1024,
      },
    )
    if (result.status !== 0) throw new Error(`pg_dump ${database}: ${result.stderr}`)
    return result.stdout.replace(/^\\(un)?restrict .*$/gm, '')
  }

  /** Restores one source with the reader key. */
  function restore(source: string, target: string, ...extra: string[]): Promise<CliRun> {
    return run([
      'restore',
      '--source',
      source,
      '--target',
      target,
      '--key',
      'keys/reader.key',
      ...extra,
    ])
  }

  async function snapshotCount(): Promise<number> {
    const listed = await run(['snapshots', '--json'])
    return (JSON.parse(listed.stdout) as unknown[]).length
  }

  beforeAll(async () => {
    server = await startPostgres()
    server.sql('postgres', 'CREATE DATABASE shop')
    server.sql('shop', DATA_SET)
    server.sql('postgres', 'CREATE DATABASE crm')
    server.sql('crm', "CREATE TABLE contacts (name text); INSERT INTO contacts VALUES ('Zoë')")
    project = await createProject({ config: CONFIG })
    env = { DATABASE_URL: server.url('shop'), PG_ADMIN_URL: server.url('postgres') }
    expect((await run(['init'])).code).toBe(0)
  }, 120_000)

  afterAll(async () => {
    await server?.stop()
    await project?.cleanup()
  })

  it('restores a database whose re-dump equals the original, with exact row counts in the manifest', async () => {
    const backup = await run(['backup', '--source', 'app'])
    expect(backup.stderr).toBe("backing up postgres source 'app'\n")
    expect(backup.code).toBe(0)

    const facts = await latestFacts(project, 'app', env)
    expect(facts).toMatchObject({ engine: 'postgres', serverMajor: server.major })
    const [database] = facts.databases as Array<{
      name: string
      tables: unknown[]
      largeObjects: number
    }>
    expect(database?.name).toBe('shop')
    expect(database?.largeObjects).toBe(1)
    expect(database?.tables).toEqual([
      { schema: 'odd "schema"', name: ';weird', rows: 3 },
      { schema: 'public', name: 'big', rows: 1_000_000 },
      { schema: 'public', name: 'events', rows: 0 },
      { schema: 'public', name: 'kinds', rows: 2 },
    ])

    const restored = await restore('app', server.url('shop_restored'))
    expect(restored.stderr).not.toContain('kluis:')
    expect(restored.code).toBe(0)
    expect(restored.stdout).toContain('database shop_restored on 127.0.0.1')
    expect(restored.stdout).toContain('4 tables, 1 large object, row counts match')
    expect(redump(server, 'shop_restored')).toBe(redump(server, 'shop'))
    // The bytea with every byte value and the large object, compared by content once more.
    const probe =
      'SELECT md5(raw) || md5(lo_get((SELECT min(oid) FROM pg_largeobject_metadata))) FROM kinds WHERE raw IS NOT NULL'
    expect(server.sql('shop_restored', probe)).toBe(server.sql('shop', probe))
  }, 120_000)

  it('stops a restore at a tampered chunk: pg_restore never commits, the new database is dropped', async () => {
    const listed = JSON.parse((await run(['snapshots', '--json'])).stdout) as Array<{ id: string }>
    const snapshot = listed.at(-1)?.id as string
    const indexText = await readFile(
      join(project.dir, 'repo', 'snapshots', `${snapshot}.json.asc`),
      'utf8',
    )
    const index = JSON.parse(
      indexText.slice(indexText.indexOf('{'), indexText.lastIndexOf('}') + 1),
    )
    const chunks = index.sources.find((s: { name: string }) => s.name === 'app').streams[0].chunks
    expect(chunks.length).toBeGreaterThan(3)
    // The last chunk: pg_restore has already loaded most of the dump when it arrives.
    const id = chunks.at(-1)[0] as string
    const object = `chunks/${id.slice(0, 2)}/${id}`
    const path = join(project.dir, 'repo', object)
    const original = await readFile(path)
    const changed = Buffer.from(original)
    changed[changed.length - 40] = (changed[changed.length - 40] as number) ^ 1
    await writeFile(path, changed)
    try {
      const restored = await restore('app', server.url('shop_tampered'))
      expect(restored.code).toBe(1)
      expect(restored.stderr).toContain(object)
      expect(
        server.sql('postgres', "SELECT count(*) FROM pg_database WHERE datname = 'shop_tampered'"),
      ).toBe('0')
      // Over an existing database (--force drops and recreates objects): all of it rolls back.
      const before = redump(server, 'shop_restored')
      const forced = await restore('app', server.url('shop_restored'), '--force')
      expect(forced.code).toBe(1)
      expect(forced.stderr).toContain(object)
      expect(redump(server, 'shop_restored')).toBe(before)
    } finally {
      await writeFile(path, original)
    }
  }, 120_000)

  it('refuses a non-empty target database, and restores over it with --force', async () => {
    server.sql('shop_restored', "INSERT INTO kinds (note) VALUES ('added after the restore')")
    const refused = await restore('app', server.url('shop_restored'))
    expect(refused.code).toBe(1)
    expect(refused.stderr).toContain('restore target database shop_restored on 127.0.0.1')
    expect(refused.stderr).toContain('is not empty')
    expect(refused.stderr).toContain('--force')
    expect(server.sql('shop_restored', 'SELECT count(*) FROM kinds')).toBe('3')

    const forced = await restore('app', server.url('shop_restored'), '--force')
    expect(forced.stderr).not.toContain('kluis:')
    expect(forced.code).toBe(0)
    expect(redump(server, 'shop_restored')).toBe(redump(server, 'shop'))
  }, 120_000)

  it('counts rows in the snapshot it dumps while another session keeps writing', async () => {
    const writer = spawn(
      join(postgresBinDir() as string, 'psql'),
      [
        '-X',
        '-q',
        '--no-password',
        `--dbname=${server.url('shop').replace(/:[^:@/]*@/, '@')}`,
        '-c',
        'CALL write_events(1500)',
      ],
      { env: { ...process.env, PGPASSWORD: server.password }, stdio: 'ignore' },
    )
    const finished = new Promise((resolve) => writer.once('close', resolve))
    try {
      await waitFor(() => Number(server.sql('shop', 'SELECT count(*) FROM events')) > 20)
      const backup = await run(['backup', '--source', 'app'])
      expect(backup.code).toBe(0)
      const restored = await restore('app', server.url('shop_during_writes'))
      // The restore compares every table's rows with the manifest's counts.
      expect(restored.stderr).not.toContain('kluis:')
      expect(restored.stdout).toContain('row counts match')
      const facts = await latestFacts(project, 'app', env)
      const [database] = facts.databases as Array<{ tables: Array<{ name: string; rows: number }> }>
      const recorded = database?.tables.find((t) => t.name === 'events')?.rows ?? -1
      expect(recorded).toBeGreaterThan(20)
      expect(Number(server.sql('shop_during_writes', 'SELECT count(*) FROM events'))).toBe(recorded)
      // The writer went on after the snapshot was taken.
      await finished
      expect(Number(server.sql('shop', 'SELECT count(*) FROM events'))).toBeGreaterThan(recorded)
    } finally {
      writer.kill()
      await finished
    }
  }, 120_000)

  it('backs up every database with roles, and restores them into another server under their own names', async () => {
    const backup = await run(['backup', '--source', 'all-pg'])
    expect(backup.stderr).not.toContain('kluis:')
    expect(backup.code).toBe(0)
    const facts = await latestFacts(project, 'all-pg', env)
    const names = (facts.databases as Array<{ name: string }>).map((d) => d.name)
    expect(names).toEqual(expect.arrayContaining(['crm', 'postgres', 'shop', 'shop_restored']))
    expect(names).not.toContain('template1')
    expect(facts.globals).toBe('globals')

    const naming = await restore('all-pg', server.url('one'))
    expect(naming.code).toBe(2)
    expect(naming.stderr).toContain('without a database')

    const other = await startPostgres()
    try {
      // One database alone on a new server: its owner role is not there yet.
      const alone = await restore('app', other.url('shop_alone'))
      expect(alone.code).toBe(1)
      expect(alone.stderr).toContain('role "app_owner" does not exist')
      expect(alone.stderr).toContain('globals: true')
      expect(
        other.sql('postgres', "SELECT count(*) FROM pg_database WHERE datname = 'shop_alone'"),
      ).toBe('0')

      const serverUrl = other.url('').replace(/\/$/, '/')
      const restored = await restore('all-pg', serverUrl)
      expect(restored.stderr).not.toContain('kluis:')
      expect(restored.code).toBe(0)
      expect(
        other.sql('postgres', "SELECT rolname FROM pg_roles WHERE rolname = 'app_owner'"),
      ).toBe('app_owner')
      expect(redump(other, 'shop')).toBe(redump(server, 'shop'))
      expect(redump(other, 'crm')).toBe(redump(server, 'crm'))
      expect(other.sql('shop', "SELECT tableowner FROM pg_tables WHERE tablename = 'kinds'")).toBe(
        'app_owner',
      )
    } finally {
      await other.stop()
    }
  }, 180_000)

  it('restores a database stream with standard tools alone (emergency-restore.sh, then pg_restore)', async () => {
    const gnupghome = await mkdtemp(join(tmpdir(), 'kluis-gnupg-'))
    const gpgEnv = { ...process.env, GNUPGHOME: gnupghome, LC_ALL: 'C' }
    const tool = (command: string, args: string[], extraEnv: NodeJS.ProcessEnv = {}) => {
      const result = spawnSync(command, args, {
        cwd: project.dir,
        env: { ...gpgEnv, ...extraEnv },
        encoding: 'utf8',
      })
      expect(result.status, `${command}: ${result.stderr}`).toBe(0)
      return result.stdout
    }
    try {
      tool('gpg', ['--batch', '--quiet', '--import', 'keys/reader.key', 'keys/writer.asc'])
      const colons = tool('gpg', ['--batch', '--with-colons', '--show-keys', 'keys/writer.asc'])
      const fingerprint = /^fpr:+([0-9A-F]{40}):/m.exec(colons)?.[1] ?? ''
      const listed = JSON.parse((await run(['snapshots', '--json'])).stdout) as Array<{
        id: string
      }>
      const snapshot = listed.at(-1)?.id ?? '' // the all-pg backup of the test before
      const archive = join(project.dir, 'crm-by-hand.dump')
      tool('sh', [emergencyScript, 'repo', 'all-pg', archive, snapshot], {
        KLUIS_WRITER_FINGERPRINT: fingerprint,
        KLUIS_STREAM: 'database:crm',
      })
      server.sql('postgres', 'CREATE DATABASE crm_by_hand')
      tool(
        join(postgresBinDir() as string, 'pg_restore'),
        [
          '--single-transaction',
          '--no-password',
          `--dbname=${server.url('crm_by_hand').replace(/:[^:@/]*@/, '@')}`,
          archive,
        ],
        { PGPASSWORD: server.password },
      )
      expect(redump(server, 'crm_by_hand')).toBe(redump(server, 'crm'))
    } finally {
      spawnSync('gpgconf', ['--kill', 'gpg-agent'], { env: gpgEnv })
      await rm(gnupghome, { recursive: true, force: true })
    }
  }, 60_000)

  it('writes the archives as files when the target is a folder; pg_restore reads them', async () => {
    const restored = await restore('app', 'restored-files')
    expect(restored.code).toBe(0)
    const archive = join(project.dir, 'restored-files', 'app', 'shop.dump')
    const listed = spawnSync(join(postgresBinDir() as string, 'pg_restore'), ['--list', archive], {
      encoding: 'utf8',
    })
    expect(listed.status).toBe(0)
    expect(listed.stdout).toContain('TABLE DATA public big')
    expect(
      await readFile(join(project.dir, 'restored-files', 'app', 'README.txt'), 'utf8'),
    ).toContain('pg_restore')
  })

  it('fails a backup whose pg_dump is killed half-way, and leaves no snapshot; no password in any argv', async () => {
    const before = await snapshotCount()
    const seenArgs: string[] = []
    let killed = false
    const watcher = (async () => {
      while (!killed) {
        for (const pid of processIds('pg_dump')) {
          const args = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')
          if (!args.includes('--snapshot=')) continue
          seenArgs.push(args)
          process.kill(Number(pid), 'SIGKILL')
          killed = true
        }
        for (const pid of processIds('psql')) {
          seenArgs.push(await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => ''))
        }
        await new Promise((resolve) => setTimeout(resolve, 5))
      }
    })()
    const backup = await run(['backup', '--source', 'app'])
    killed = true
    await watcher
    expect(backup.code, backup.stderr).toBe(1)
    expect(backup.stderr).toContain("pg_dump of source 'app' database shop was killed by SIGKILL")
    expect(await snapshotCount()).toBe(before)
    expect(seenArgs.length).toBeGreaterThan(0)
    for (const args of seenArgs) {
      expect(args).not.toContain(server.password)
      expect(args).not.toContain(encodeURIComponent(server.password))
    }
  }, 120_000)

  it('refuses to dump with a pg_dump older than the server, naming the version to install', async () => {
    const bin = join(project.dir, 'old-postgres-bin')
    await mkdir(bin)
    await symlink(join(postgresBinDir() as string, 'psql'), join(bin, 'psql'))
    const marker = join(project.dir, 'old-pg-dump-ran')
    await writeFile(
      join(bin, 'pg_dump'),
      `#!/bin/sh\nif [ "$1" = --version ]; then echo 'pg_dump (PostgreSQL) 13.9'; exit 0; fi\ntouch '${marker}'\n`,
    )
    await chmod(join(bin, 'pg_dump'), 0o755)
    const before = await snapshotCount()
    const backup = await run(['backup', '--source', 'app'], { KLUIS_POSTGRES_BIN: bin })
    expect(backup.code).toBe(1)
    expect(backup.stderr).toContain(
      `needs pg_dump ${server.major} or newer; the newest found is 13.9`,
    )
    expect(backup.stderr).toContain(`apt-get install postgresql-client-${server.major}`)
    expect(backup.stderr).not.toContain('    at ')
    await expect(readFile(marker)).rejects.toThrow()
    expect(await snapshotCount()).toBe(before)

    const none = await run(['backup', '--source', 'app'], {
      KLUIS_POSTGRES_BIN: join(project.dir, 'keys'),
    })
    expect(none.code).toBe(1)
    expect(none.stderr).toContain('psql was not found')
    expect(none.stderr).toContain('KLUIS_POSTGRES_BIN')
  })

  it('prefers the pg_dump of the server major, else the oldest newer one', async () => {
    const dirs: string[] = []
    for (const major of [16, 17]) {
      const dir = join(project.dir, `pg-${major}`)
      await mkdir(dir)
      await writeFile(join(dir, 'pg_dump'), `#!/bin/sh\necho 'pg_dump (PostgreSQL) ${major}.1'\n`)
      await chmod(join(dir, 'pg_dump'), 0o755)
      dirs.push(dir)
    }
    const env = { PATH: dirs.reverse().join(':') }
    expect((await postgresTool('pg_dump', server.major, env, 'test')).major).toBe(server.major)
    expect((await postgresTool('pg_dump', 16, env, 'test')).path).toBe(
      join(project.dir, 'pg-16', 'pg_dump'),
    )
    await expect(postgresTool('pg_dump', 18, env, 'test')).rejects.toThrow(
      'needs pg_dump 18 or newer; the newest found is 17.1',
    )
  })

  it('keeps the password out of errors, even when the server repeats it', async () => {
    // The password as a database name: the server's error quotes it, kluis must not.
    const quoting = await run(['backup', '--source', 'app'], {
      DATABASE_URL: server.url(server.password),
    })
    expect(quoting.code).toBe(1)
    expect(quoting.stderr).toContain('database "***" does not exist')
    const wrong = await run(['backup', '--source', 'app'], {
      DATABASE_URL: server
        .url('shop')
        .replace(encodeURIComponent(server.password), 'wrong%40password'),
    })
    expect(wrong.code).toBe(1)
    expect(wrong.stderr).toContain('password authentication failed')
    for (const { stdout, stderr } of outputs) {
      for (const form of [server.password, encodeURIComponent(server.password)]) {
        expect(stdout).not.toContain(form)
        expect(stderr).not.toContain(form)
      }
    }
  })
})

function processIds(name: string): string[] {
  const found = spawnSync('pgrep', ['-x', name], { encoding: 'utf8' })
  return found.stdout.split('\n').filter(Boolean)
}

async function waitFor(condition: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('timed out waiting')
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}
