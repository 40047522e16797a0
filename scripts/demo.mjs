// `npm start`: the whole path once, on the embedded defaults. Backs up examples/ (a SQLite
// database that another process keeps writing to, and a folder) into a local encrypted
// repository, lists the snapshots, restores the latest one and verifies it.
import { spawn, spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'
import { DatabaseSync } from 'node:sqlite'

const examples = new URL('../examples/', import.meta.url).pathname
const cli = new URL('../dist/cli.js', import.meta.url).pathname

function kluis(...args) {
  console.log(`\n$ kluis ${args.join(' ')}`)
  const result = spawnSync(process.execPath, [cli, ...args], { cwd: examples, stdio: 'inherit' })
  if (result.status !== 0) {
    console.error(`\ndemo failed: kluis ${args[0]} exited with ${result.status}`)
    process.exit(1)
  }
}

// 1. The application's database, created on first run.
const database = join(examples, 'data', 'app.db')
if (!existsSync(database)) {
  const db = new DatabaseSync(database)
  db.exec('PRAGMA journal_mode = WAL')
  db.exec(
    'CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT, total_cents INTEGER, created TEXT)',
  )
  db.exec(`WITH RECURSIVE n(value) AS (SELECT 1 UNION ALL SELECT value + 1 FROM n WHERE value < 20000)
    INSERT INTO orders (customer, total_cents, created)
    SELECT 'customer ' || (value % 500), value * 37 % 100000, datetime('now') FROM n`)
  db.close()
}

// 2. Keys (once) and the repository (once).
if (!existsSync(join(examples, 'keys', 'writer.key'))) kluis('keys', 'generate', '--out', 'keys')
if (!existsSync(join(examples, 'backup-repo', 'config.json'))) kluis('init')

// 3. The application keeps writing while we back up: the copy must still be consistent.
const writer = spawn(
  process.execPath,
  [
    '--no-warnings',
    '--input-type=module',
    '-e',
    `import { DatabaseSync } from 'node:sqlite'
     const db = new DatabaseSync(${JSON.stringify(database)})
     db.exec('PRAGMA busy_timeout = 5000')
     const insert = db.prepare("INSERT INTO orders (customer, total_cents, created) VALUES (?, ?, datetime('now'))")
     setInterval(() => { for (let i = 0; i < 50; i++) insert.run('live customer', i) }, 5)`,
  ],
  { stdio: 'ignore' },
)

try {
  kluis('backup')
  kluis('snapshots')
  rmSync(join(examples, 'restored'), { recursive: true, force: true })
  kluis('restore', '--target', 'restored', '--key', 'keys/reader.key')
  kluis('check', '--read-data', '--key', 'keys/reader.key')
} finally {
  writer.kill()
}

// 4. Verify what a user would: every file byte-equal, the excluded file absent, the database sound.
const uploads = join(examples, 'data', 'uploads')
const restoredUploads = join(examples, 'restored', 'uploads')
let files = 0
for (const path of walk(uploads)) {
  const name = relative(uploads, path)
  const copy = join(restoredUploads, name)
  if (name.endsWith('.tmp')) {
    if (existsSync(copy)) fail(`${name} should have been excluded`)
    continue
  }
  if (!existsSync(copy) || sha256(path) !== sha256(copy)) fail(`${name} differs after restore`)
  if ((statSync(path).mode & 0o7777) !== (statSync(copy).mode & 0o7777))
    fail(`${name} lost its mode`)
  files++
}
const restoredDb = new DatabaseSync(join(examples, 'restored', 'app-db', 'app.db'), {
  readOnly: true,
})
const integrity = restoredDb.prepare('PRAGMA integrity_check').get().integrity_check
const orders = restoredDb.prepare('SELECT count(*) AS n FROM orders').get().n
restoredDb.close()
if (integrity !== 'ok') fail(`restored database: integrity_check says ${integrity}`)
console.log(
  `\nverified: ${files} files byte-equal, database integrity ok with ${orders} orders (taken while the app was writing)`,
)

function* walk(directory) {
  for (const entry of readdirSync(directory, { withFileTypes: true })) {
    const path = join(directory, entry.name)
    if (entry.isDirectory()) yield* walk(path)
    else yield path
  }
}

function sha256(path) {
  return createHash('sha256').update(readFileSync(path)).digest('hex')
}

function fail(message) {
  console.error(`demo failed: ${message}`)
  process.exit(1)
}
