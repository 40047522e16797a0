import { spawn, spawnSync } from 'node:child_process'
import { chmod, mkdir, mkdtemp, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { Readable } from 'node:stream'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { IntegrityError } from '../src/core/errors.js'
import { MemoryReporter } from '../src/core/reporter.js'
import { parseDatabaseUrl } from '../src/sources/database/database-url.js'
import { MysqlDumpScanner, scanMysqlDump } from '../src/sources/database/mysql-dump-scanner.js'
import { MysqlSession, optionFileText } from '../src/sources/database/mysql-tools.js'
import { type MysqlFacts, mysqlDriver } from '../src/sources/mysql.js'
import type { SourceContext } from '../src/sources/source.js'
import { type MariadbServer, mariadbAvailable, startMariadb } from './support/mariadb-server.js'
import { type CliRun, createProject, latestFacts, type Project } from './support/project.js'

const available = mariadbAvailable()
const installHint = 'install MariaDB: apt-get install mariadb-server mariadb-client'
if (!available && !process.env.CI) {
  console.warn(`mysql-source.test.ts: MariaDB tests skipped; ${installHint}`)
}

describe('MySQL dump scanner', () => {
  const dump = Buffer.from(
    [
      '/*M!999999\\- enable the sandbox mode */ ',
      '-- MariaDB dump 10.19  Distrib 10.11.18-MariaDB',
      'CREATE TABLE `empty` (',
      '  `id` int(11) DEFAULT NULL',
      ');',
      'CREATE TABLE `odd ``name`` (x), y;` (',
      ');',
      "INSERT INTO `odd ``name`` (x), y;` VALUES (1,'it\\'s (a), test; \\\\',NULL),",
      '(2,\'two\'\'s "("\',0x00FF),(3,\'\',"dq\\"("""),',
      "(4,'line\\nINSERT INTO `x` VALUES (1);');",
      'INSERT INTO `t` (`a`, `VALUES(`) VALUES (1,2);',
      'DELIMITER ;;',
      'CREATE PROCEDURE `p`()',
      'BEGIN',
      'INSERT INTO `t` VALUES (99);',
      'END ;;',
      'DELIMITER ;',
      'INSERT INTO `t` VALUES (3,4);',
      '-- Dump completed',
      '',
    ].join('\n'),
  )
  const expected = { empty: 0, 'odd `name` (x), y;': 4, t: 2 }

  it('counts rows per table, skipping strings and routine bodies, at any chunk boundary', () => {
    for (let a = 0; a <= dump.length; a++) {
      for (let b = a; b <= dump.length; b += 13) {
        const summary = scanMysqlDump(dump.subarray(0, a), dump.subarray(a, b), dump.subarray(b))
        expect(Object.fromEntries(summary.tables)).toEqual(expected)
        expect(summary.completed).toBe(true)
      }
    }
    // One byte at a time.
    const scanner = new MysqlDumpScanner()
    for (let i = 0; i < dump.length; i++) scanner.push(dump.subarray(i, i + 1))
    expect(Object.fromEntries(scanner.finish().tables)).toEqual(expected)
  })

  it('tells a whole dump from one that stops early', () => {
    const end = dump.indexOf('-- Dump completed')
    for (const cut of [0, 10, end - 20, end, end + 5]) {
      expect(scanMysqlDump(dump.subarray(0, cut)).completed).toBe(false)
    }
    expect(scanMysqlDump(dump.subarray(0, dump.length - 1)).completed).toBe(true)
    expect(scanMysqlDump(dump, Buffer.from('\n\n')).completed).toBe(true)
    expect(scanMysqlDump(dump, Buffer.from('SELECT 1;\n')).completed).toBe(false)
  })

  it('scans a large dump in linear time', () => {
    const rows = Array.from(
      { length: 1000 },
      (_, i) => `(${i},'row ${i} it\\'s','{\\"a\\":1}',NULL)`,
    )
    const statement = Buffer.from(`INSERT INTO \`big\` VALUES ${rows.join(',\n')};\n`)
    const scanner = new MysqlDumpScanner()
    const started = performance.now()
    for (let i = 0; i < 1000; i++) scanner.push(statement) // ~38 MB, a million rows
    const seconds = (performance.now() - started) / 1000
    expect(scanner.finish().tables.get('big')).toBe(1_000_000)
    expect(seconds).toBeLessThan(5) // ~0.1 s here: a quadratic scan would take minutes
  })
})

describe('MySQL option file', () => {
  const password = 'p@ss:w/rd%+ é "q" \'s\' #x\\y\ttab '
  const url = parseDatabaseUrl(
    `mysql://kluis:${encodeURIComponent(password)}@127.0.0.1:3307/shop?ssl-ca=/etc/ca%20file.pem`,
    'test',
  )

  it('quotes the password so that the client reads it back exactly', async () => {
    const text = optionFileText(url, 'test')
    expect(text).toContain('ssl-ca="/etc/ca file.pem"')
    expect(text).toContain('protocol="TCP"')
    const dir = await mkdtemp(join(tmpdir(), 'kluis-mysql-test-'))
    try {
      const file = join(dir, 'client.cnf')
      await writeFile(file, text)
      const printed = spawnSync('mariadb', [`--defaults-extra-file=${file}`, '--print-defaults'], {
        encoding: 'utf8',
      })
      if (printed.error) return // no client installed: the driver's tests below say so
      expect(printed.stdout).toContain(`--password=${password}`)
      expect(printed.stdout).toContain('--port=3307')
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('gives tools the credentials in a 0600 file, never in argv or the environment', async () => {
    const temporary = await mkdtemp(join(tmpdir(), 'kluis-mysql-test-'))
    const context: SourceContext = {
      reporter: new MemoryReporter(),
      temporaryDirectory: temporary,
      resolvePath: (p) => p,
      env: { PATH: process.env.PATH, MYSQL_PWD: 'leaked' },
    }
    try {
      const session = await MysqlSession.open(url, context, 'test')
      const tool = { path: '/usr/bin/mariadb-dump', version: '10.11.18-MariaDB', major: 10 }
      const command = session.command(tool, ['--single-transaction', '--', 'shop'], 'test')
      expect(command.args[0]).toBe(`--defaults-extra-file=${session.optionFile}`)
      const visible = [...command.args, ...Object.values(command.env), command.label].join('\n')
      for (const form of [password, encodeURIComponent(password)]) {
        expect(visible).not.toContain(form)
      }
      expect(command.env.MYSQL_PWD).toBeUndefined()
      // User option files (~/.my.cnf) would override the URL: the tools get a private HOME.
      expect(command.env.HOME).toBe(dirname(session.optionFile))
      expect((await stat(session.optionFile)).mode & 0o777).toBe(0o600)
      await session.close()
      await expect(stat(session.optionFile)).rejects.toThrow()
    } finally {
      await rm(temporary, { recursive: true, force: true })
    }
  })
})

describe.skipIf(!available && !process.env.CI)('mysql source against a real MariaDB server', () => {
  let server: MariadbServer
  let project: Project
  let clientOptions: string
  /** Every CLI run of this file: none may show the password. */
  const runs: CliRun[] = []

  const config = `repository: file://./backup-repo
keys:
  readers: [keys/reader.asc]
  writer: keys/writer.key
  writer-public: keys/writer.asc
sources:
  - { name: shop, type: mysql, url: "\${MYSQL_URL}" }
  - { name: busy, type: mysql, url: "\${MYSQL_BUSY_URL}" }
`
  const env = (extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => ({
    PATH: process.env.PATH,
    MYSQL_URL: server.url('shop'),
    MYSQL_BUSY_URL: server.url('busy'),
    ...extra,
  })
  const run = async (args: string[], extra: NodeJS.ProcessEnv = {}) => {
    const result = await project.run(args, env(extra))
    runs.push(result)
    return result
  }
  const restore = (source: string, database: string, ...more: string[]) =>
    run([
      'restore',
      '--source',
      source,
      '--target',
      server.url(database),
      '--key',
      'keys/reader.key',
      ...more,
    ])
  const snapshotCount = async () => {
    const listed = await run(['snapshots', '--json'])
    expect(listed.code).toBe(0)
    return (JSON.parse(listed.stdout) as unknown[]).length
  }
  /** The client with the test's own option file (a test may use the tools directly). */
  const client = (database: string, sql: string) => server.sql(database, sql)
  const count = (database: string, table: string) =>
    Number(client(database, `SELECT COUNT(*) FROM \`${table.replaceAll('`', '``')}\``))

  beforeAll(async () => {
    if (!available) throw new Error(`MariaDB is required in CI: ${installHint}`)
    server = await startMariadb()
    clientOptions = join(server.dir, 'kluis-test-client.cnf')
    await writeFile(
      clientOptions,
      `[client]\nuser=${server.user}\npassword="${server.password.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"\nhost=127.0.0.1\nport=${server.port}\nprotocol=TCP\n`,
      { mode: 0o600 },
    )
    createShop(server)
    createBusy(server)
    project = await createProject({ config })
    const init = await run(['init'])
    expect(init.stderr).not.toMatch(/^kluis:/m)
    expect(init.code).toBe(0)
  })

  afterAll(async () => {
    await project?.cleanup()
    await server?.stop()
  })

  /** A re-dump of a database, without what legitimately differs between two copies. */
  function redump(database: string): string {
    const result = spawnSync(
      'mariadb-dump',
      [
        `--defaults-file=${clientOptions}`,
        '--skip-comments',
        '--skip-dump-date',
        '--routines',
        '--triggers',
        '--events',
        '--hex-blob',
        '--default-character-set=utf8mb4',
        '--order-by-primary',
        '--',
        database,
      ],
      { encoding: 'utf8', maxBuffer: 1024 * 1024 * 1024 },
    )
    expect(result.stderr).toBe('')
    expect(result.status).toBe(0)
    return result.stdout
  }

  function checksums(database: string): Record<string, string> {
    const tables = client(
      database,
      "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE' ORDER BY 1",
    ).split('\n')
    const result: Record<string, string> = {}
    for (const table of tables) {
      const [, sum] = client(database, `CHECKSUM TABLE \`${table.replaceAll('`', '``')}\``).split(
        '\t',
      )
      result[table] = sum ?? ''
    }
    return result
  }

  it('backs up the awkward data set and restores it into a new database with the same content', async () => {
    const backup = await run(['backup', '--source', 'shop', '--json'])
    expect(backup.stderr).not.toMatch(/^kluis:/m)
    expect(backup.code).toBe(0)

    const facts = await latestFacts(project, 'shop', env())
    const tables = facts.tables as Record<string, number>
    expect(facts).toMatchObject({
      engine: 'mysql',
      flavor: 'mariadb',
      server: server.version,
      database: 'shop',
      rowCounts: 'from-dump',
    })
    expect(facts.dumpTool).toMatch(/^mariadb-dump 10\.\d+\.\d+-MariaDB/)
    expect(Object.keys(tables).sort()).toEqual(
      ['audit', 'big', 'blobs', 'docs', 'empty_table', 'odd `name` (x), y;'].sort(),
    )
    for (const [table, rows] of Object.entries(tables)) expect(rows).toBe(count('shop', table))
    expect(tables.big).toBe(1_000_000)

    const restored = await restore('shop', 'shop_restored')
    expect(restored.stderr).not.toMatch(/^kluis:/m)
    expect(restored.code).toBe(0)
    expect(restored.stdout).toContain('database shop_restored on 127.0.0.1')
    expect(restored.stdout).toContain('6 tables, row counts match')

    const original = redump('shop')
    for (const part of [
      'CREATE DEFINER', // routines
      'TRIGGER docs_audit',
      '\nINSERT INTO `audit` VALUES (NULL, 0, NULL), (NULL, 1, NULL);\n', // a routine's body
      'EVENT `cleanup`',
      'VIEW `doc_titles`',
      'AUTO_INCREMENT=6',
    ]) {
      expect(original.includes(part), part).toBe(true)
    }
    expect(firstDifference(redump('shop_restored'), original)).toBeUndefined()
    expect(checksums('shop_restored')).toEqual(checksums('shop'))
    expect(client('shop_restored', 'SELECT twice(21)')).toBe('42')
  })

  it('takes a consistent dump while the database is being written to', async () => {
    // A separate client keeps inserting an order and its two lines per transaction.
    const churn = startChurn(clientOptions)
    let before = 0
    try {
      await waitFor(() => count('busy', 'orders') > 20)
      before = count('busy', 'orders')
      const backup = await run(['backup', '--source', 'busy', '--json'])
      expect(backup.stderr).not.toMatch(/^kluis:/m)
      expect(backup.code).toBe(0)
      expect(count('busy', 'orders')).toBeGreaterThan(before) // it really wrote meanwhile
    } finally {
      client('busy', 'UPDATE control SET stop = 1')
      await churn
    }
    const facts = await latestFacts(project, 'busy', env())
    const tables = facts.tables as Record<string, number>
    const restored = await restore('busy', 'busy_restored')
    expect(restored.stderr).not.toMatch(/^kluis:/m)
    expect(restored.code).toBe(0)
    for (const [table, rows] of Object.entries(tables)) {
      expect(count('busy_restored', table)).toBe(rows)
    }
    // Whole transactions only: every order has its two lines.
    expect(tables.order_lines).toBe(2 * (tables.orders ?? 0))
    expect(tables.orders).toBeGreaterThanOrEqual(before)
  })

  it('refuses a non-empty target without --force and restores into it with --force', async () => {
    client('busy_restored', 'DELETE FROM filler WHERE id <= 10')
    const refused = await restore('busy', 'busy_restored')
    expect(refused.code).toBe(1)
    expect(refused.stderr).toContain('database busy_restored on 127.0.0.1')
    expect(refused.stderr).toContain('is not empty')
    expect(refused.stderr).toContain('--force')
    expect(count('busy_restored', 'filler')).toBe(199_990) // untouched

    const forced = await restore('busy', 'busy_restored', '--force')
    expect(forced.stderr).not.toMatch(/^kluis:/m)
    expect(forced.code).toBe(0)
    expect(count('busy_restored', 'filler')).toBe(200_000)
  })

  it('fails a restore whose client fails and drops the database it created', async () => {
    // The target server refuses: a user without rights to create tables.
    client(
      '',
      "CREATE USER 'reader'@'%' IDENTIFIED BY 'reader-pass'; GRANT CREATE, DROP, SELECT ON *.* TO 'reader'@'%'",
    )
    const url = `mysql://reader:reader-pass@127.0.0.1:${server.port}/denied_restore`
    const result = await run([
      'restore',
      '--source',
      'busy',
      '--target',
      url,
      '--key',
      'keys/reader.key',
    ])
    expect(result.code).toBe(1)
    expect(result.stderr).toMatch(/restoring into database denied_restore .* exited with code 1/)
    expect(result.stderr).toMatch(/denied/i)
    expect(result.stderr).toContain('dropped the unfinished database denied_restore')
    expect(result.stderr).not.toContain('LOCK TABLES') // the failing statement is not printed
    expect(result.stderr).not.toContain('reader-pass')
    expect(client('', "SHOW DATABASES LIKE 'denied_restore'")).toBe('')
  })

  it('restores to a folder as <database>.sql that loads by hand', async () => {
    const restored = await run([
      'restore',
      '--source',
      'busy',
      '--target',
      'out',
      '--key',
      'keys/reader.key',
    ])
    expect(restored.stderr).not.toMatch(/^kluis:/m)
    expect(restored.code).toBe(0)
    expect(restored.stdout).toContain('busy.sql')
    expect(restored.stdout).toContain('mariadb --default-character-set=utf8mb4 DATABASE < busy.sql')
    const file = join(project.dir, 'out', 'busy', 'busy.sql')
    client('', 'CREATE DATABASE busy_by_hand')
    const loaded = spawnSync(
      'sh',
      [
        '-c',
        `mariadb --defaults-file="$1" --default-character-set=utf8mb4 busy_by_hand < "$2"`,
        'sh',
        clientOptions,
        file,
      ],
      { encoding: 'utf8' },
    )
    expect(loaded.stderr).toBe('')
    const facts = await latestFacts(project, 'busy', env())
    for (const [table, rows] of Object.entries(facts.tables as Record<string, number>)) {
      expect(count('busy_by_hand', table)).toBe(rows)
    }
  })

  it('checks every table against the facts after a restore, and wants a database in the URL', async () => {
    client('', 'CREATE DATABASE tiny')
    client('tiny', 'CREATE TABLE t (id INT); INSERT INTO t VALUES (1), (2)')
    const context: SourceContext = {
      reporter: new MemoryReporter(),
      temporaryDirectory: tmpdir(),
      resolvePath: (p) => p,
      env: { PATH: process.env.PATH },
    }
    const reading = await mysqlDriver.read(
      { name: 'tiny', type: 'mysql', url: server.url('tiny') },
      context,
    )
    const chunks: Buffer[] = []
    try {
      for (const stream of reading.streams)
        for await (const chunk of stream.data) chunks.push(chunk)
    } finally {
      await reading.close()
    }
    const facts = (await reading.facts()) as MysqlFacts
    expect(facts.tables).toEqual({ t: 2 })
    const wrong = { ...facts, tables: { t: 3 } }
    const target = parseDatabaseUrl(server.url('tiny_check'), '--target')
    const restoring = mysqlDriver.server?.restore(
      [{ name: 'dump', data: Readable.from(chunks) }],
      target,
      wrong,
      context,
      { force: false },
    )
    await expect(restoring).rejects.toThrow(IntegrityError)
    await expect(restoring).rejects.toThrow(
      /database tiny_check on 127\.0\.0\.1:\d+: table t has 2 rows after the restore, the backup recorded 3/,
    )

    const noDatabase = await restore('busy', '')
    expect(noDatabase.code).toBe(2)
    expect(noDatabase.stderr).toContain('names no database')
  })

  it('uses the other family’s dump tool with a warning when the matching one is missing', async () => {
    const bin = await mkdtemp(join(tmpdir(), 'kluis-mysql-family-'))
    try {
      await symlink(which('mariadb'), join(bin, 'mariadb'))
      // Claims to be MySQL 8's mysqldump, records its argv, drops the MySQL-only options.
      await writeFile(
        join(bin, 'mysqldump'),
        `#!/bin/sh
case "$1" in --version) echo "mysqldump  Ver 8.0.36 for Linux on x86_64 (MySQL Community Server - GPL)"; exit 0;; esac
printf '%s\\n' "$@" > "${bin}/argv"
for a do shift; case "$a" in --set-gtid-purged=*|--column-statistics=*) ;; *) set -- "$@" "$a";; esac; done
exec "${which('mariadb-dump')}" "$@"
`,
      )
      await chmod(join(bin, 'mysqldump'), 0o755)
      const backup = await run(['backup', '--source', 'busy'], { KLUIS_MYSQL_BIN: bin })
      expect(backup.stderr).not.toMatch(/^kluis:/m)
      expect(backup.code).toBe(0)
      expect(backup.stderr).toMatch(
        /warning: .*no MariaDB tool is installed, using MySQL's mysqldump 8\.0\.36 instead/,
      )
      expect((await latestFacts(project, 'busy', env())).dumpTool).toBe('mysqldump 8.0.36')
      const argv = (await readFile(join(bin, 'argv'), 'utf8')).trim().split('\n')
      expect(argv[0]).toMatch(/^--defaults-extra-file=\/.*kluis-mysql-.*\/client\.cnf$/)
      expect(argv).toContain('--set-gtid-purged=OFF')
      expect(argv).toContain('--column-statistics=0')
      expect(argv.slice(-2)).toEqual(['--', 'busy'])
      expect(argv.join('\n')).not.toContain(server.password)
      expect(argv.join('\n')).not.toContain(encodeURIComponent(server.password))
    } finally {
      await rm(bin, { recursive: true, force: true })
    }
  })

  it('connects where the URL says, whatever the user’s ~/.my.cnf holds', async () => {
    const home = await mkdtemp(join(tmpdir(), 'kluis-mysql-home-'))
    try {
      // Read after the option file, these would win over the URL if kluis let the tools see them.
      await writeFile(
        join(home, '.my.cnf'),
        '[client]\nhost=192.0.2.1\nport=1\nuser=nobody\npassword=wrong\n',
      )
      const backup = await run(['backup', '--source', 'busy'], { HOME: home })
      expect(backup.stderr).not.toMatch(/^kluis:/m)
      expect(backup.code).toBe(0)
    } finally {
      await rm(home, { recursive: true, force: true })
    }
  })

  describe('a dump that does not finish fails the backup and leaves no snapshot', () => {
    let fakeBin: string
    beforeAll(async () => {
      fakeBin = await mkdtemp(join(tmpdir(), 'kluis-fake-mysql-'))
    })
    afterAll(async () => {
      await rm(fakeBin, { recursive: true, force: true })
    })

    /** A folder with the real client and a dump tool that runs `body` after the real dump. */
    async function fakeDump(name: string, body: string): Promise<string> {
      const dir = join(fakeBin, name)
      await mkdir(dir)
      const real = which('mariadb-dump')
      await symlink(which('mariadb'), join(dir, 'mariadb'))
      const script = join(dir, 'mariadb-dump')
      await writeFile(
        script,
        `#!/bin/sh\ncase "$1" in --version) exec "${real}" --version;; esac\n${body.replaceAll('REAL', `"${real}" "$@"`)}\n`,
      )
      await chmod(script, 0o755)
      return dir
    }

    it('that ended early while the tool exited 0', async () => {
      const before = await snapshotCount()
      const bin = await fakeDump('early', 'REAL | head -c 100000')
      const backup = await run(['backup', '--source', 'busy'], { KLUIS_MYSQL_BIN: bin })
      expect(backup.code).toBe(1)
      expect(backup.stderr).toContain('ended early')
      expect(backup.stderr).toContain('after 100000 bytes')
      expect(await snapshotCount()).toBe(before)
    })

    it('that was killed by a signal', async () => {
      const before = await snapshotCount()
      const bin = await fakeDump('killed', 'REAL | head -c 300000\nkill -9 $$')
      const backup = await run(['backup', '--source', 'busy'], { KLUIS_MYSQL_BIN: bin })
      expect(backup.code).toBe(1)
      expect(backup.stderr).toContain('was killed by SIGKILL')
      expect(await snapshotCount()).toBe(before)
    })

    it('that failed: the tool’s own message, without the password', async () => {
      const before = await snapshotCount()
      const backup = await run(['backup', '--source', 'shop'], {
        MYSQL_URL: server.url('no_such_db'),
      })
      expect(backup.code).toBe(1)
      expect(backup.stderr).toContain('mariadb-dump of database no_such_db exited with code 2')
      expect(backup.stderr).toContain("Unknown database 'no_such_db'")
      expect(await snapshotCount()).toBe(before)
    })
  })

  it('names what to install when the tools are missing', async () => {
    const empty = await mkdtemp(join(tmpdir(), 'kluis-no-mysql-'))
    try {
      const backup = await run(['backup', '--source', 'shop'], { KLUIS_MYSQL_BIN: empty })
      expect(backup.code).toBe(1)
      const lines = backup.stderr.trim().split('\n')
      expect(lines.filter((line) => line.startsWith('kluis:'))).toHaveLength(1)
      expect(backup.stderr).toContain('no mariadb-dump or mysqldump, and no mariadb or mysql')
      expect(backup.stderr).toContain(`KLUIS_MYSQL_BIN (${empty})`)
      expect(backup.stderr).toContain('apt-get install mariadb-client')
      expect(backup.stderr).toContain('default-mysql-client')
    } finally {
      await rm(empty, { recursive: true, force: true })
    }
  })

  it('never shows the password, in any run', () => {
    expect(runs.length).toBeGreaterThan(10)
    const output = runs.map((r) => r.stdout + r.stderr).join('\n')
    for (const form of [server.password, encodeURIComponent(server.password), 'p@ss']) {
      expect(output).not.toContain(form)
    }
  })

  /** Inserts orders with two lines each, one transaction per order, until control.stop = 1. */
  async function startChurn(options: string): Promise<void> {
    const code = await spawnAsync(
      'mariadb',
      [`--defaults-file=${options}`, 'busy'],
      'CALL churn();\n',
    )
    if (code !== 0) throw new Error(`the writer exited with ${code}`)
  }
})

function createShop(server: MariadbServer): void {
  const allBytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i)).toString('hex')
  server.sql('', 'CREATE DATABASE shop CHARACTER SET utf8mb4')
  server.sql(
    'shop',
    `CREATE TABLE blobs (id INT PRIMARY KEY, data LONGBLOB, bytes VARBINARY(300), note VARCHAR(50));
     INSERT INTO blobs VALUES
       (1, UNHEX('${allBytes}'), UNHEX('${allBytes}'), NULL),
       (2, '', '', 'empty'),
       (3, NULL, NULL, NULL),
       (4, UNHEX(REPEAT('${allBytes}', 4096)), UNHEX('275C0A0D1A00'), 'one MiB');
     CREATE TABLE docs (
       id INT AUTO_INCREMENT PRIMARY KEY,
       doc JSON,
       title VARCHAR(200),
       body MEDIUMTEXT,
       created DATETIME(6),
       price DECIMAL(12,2),
       ratio DOUBLE,
       flags BIT(8),
       kind ENUM('a', 'b'),
       twice_id INT AS (id * 2) VIRTUAL
     );
     CREATE TABLE audit (id INT AUTO_INCREMENT PRIMARY KEY, doc_id INT, at TIMESTAMP(6) NULL);
     CREATE TRIGGER docs_audit AFTER INSERT ON docs FOR EACH ROW INSERT INTO audit (doc_id) VALUES (NEW.id);
     INSERT INTO docs (doc, title, body, created, price, ratio, flags, kind) VALUES
       ('{"emoji": "🎉", "nested": {"a": [1, 2, null]}, "quote": "it''s \\\\"x\\\\""}', 'Grüße, 世界 🎉🦀',
        'line 1\\nline 2\\ttab \\\\ backslash ''single'' "double" (paren), comma; semicolon', '2026-01-02 03:04:05.123456',
        1234567890.12, 1.5e-300, b'10100101', 'a'),
       (NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
       ('[]', '', '\\nINSERT INTO \`docs\` VALUES (1);\\n-- Dump completed\\nDELIMITER ;;', NOW(6), -0.01, -0, b'0', 'b'),
       ('"\\\\u0000"', 'Ωμέγα ∑ ✓ \\0 zero byte', REPEAT('long text ', 10000), '1000-01-01 00:00:00', 0, 0, NULL, NULL),
       ('{}', 'deleted later', NULL, NULL, NULL, NULL, NULL, NULL);
     DELETE FROM docs WHERE title = 'deleted later';
     CREATE TABLE empty_table (id INT, name VARCHAR(10));
     CREATE TABLE \`odd \`\`name\`\` (x), y;\` (id INT PRIMARY KEY, \`VALUES (\` VARCHAR(20));
     INSERT INTO \`odd \`\`name\`\` (x), y;\` VALUES (1, ');('), (2, '\`'), (3, NULL);
     CREATE TABLE big (id INT PRIMARY KEY, v INT NOT NULL);
     INSERT INTO big SELECT seq, seq * 7 FROM seq_1_to_1000000;
     CREATE VIEW doc_titles AS SELECT id, title FROM docs WHERE title IS NOT NULL;
     CREATE FUNCTION twice(x INT) RETURNS INT DETERMINISTIC RETURN x * 2;
     DELIMITER //
     CREATE PROCEDURE add_doc(t VARCHAR(200))
BEGIN
INSERT INTO \`docs\` (\`title\`) VALUES (t);
INSERT INTO \`audit\` VALUES (NULL, 0, NULL), (NULL, 1, NULL);
END//
     DELIMITER ;
     CREATE EVENT cleanup ON SCHEDULE EVERY 1 DAY STARTS '2030-01-01 00:00:00' DISABLE
       DO DELETE FROM audit WHERE doc_id < 0;`,
  )
}

function createBusy(server: MariadbServer): void {
  server.sql('', 'CREATE DATABASE busy CHARACTER SET utf8mb4')
  server.sql(
    'busy',
    `CREATE TABLE filler (id INT PRIMARY KEY, v VARCHAR(40));
     INSERT INTO filler SELECT seq, CONCAT('filler row ', seq) FROM seq_1_to_200000;
     CREATE TABLE orders (id INT AUTO_INCREMENT PRIMARY KEY, at DATETIME(6));
     CREATE TABLE order_lines (id INT AUTO_INCREMENT PRIMARY KEY, order_id INT, n INT);
     CREATE TABLE control (stop INT);
     INSERT INTO control VALUES (0);
     DELIMITER //
     CREATE PROCEDURE churn()
     BEGIN
       DECLARE i INT DEFAULT 0;
       WHILE i < 200000 AND (SELECT stop FROM control) = 0 DO
         START TRANSACTION;
         INSERT INTO orders (at) VALUES (NOW(6));
         INSERT INTO order_lines (order_id, n) VALUES (LAST_INSERT_ID(), 1), (LAST_INSERT_ID(), 2);
         COMMIT;
         SET i = i + 1;
       END WHILE;
     END//
     DELIMITER ;`,
  )
}

/** Where two long texts first differ, with a little context; undefined when equal. */
function firstDifference(actual: string, expected: string): string | undefined {
  if (actual === expected) return undefined
  let i = 0
  while (i < actual.length && actual[i] === expected[i]) i++
  const around = (text: string) => JSON.stringify(text.slice(Math.max(0, i - 80), i + 80))
  return `at ${i} of ${actual.length}/${expected.length}: ${around(actual)} instead of ${around(expected)}`
}

function which(tool: string): string {
  const found = spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' })
  if (found.status !== 0) throw new Error(`${tool} is not installed`)
  return found.stdout.trim()
}

function spawnAsync(command: string, args: string[], input: string): Promise<number | null> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['pipe', 'ignore', 'inherit'] })
    child.on('error', reject)
    child.on('close', resolve)
    child.stdin.end(input)
  })
}

async function waitFor(condition: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time')
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}
