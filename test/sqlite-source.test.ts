import { type ChildProcess, spawn } from 'node:child_process'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createProject, type Project, sqlite } from './support/project.js'

/** A separate process that keeps inserting rows until killed; reports each commit on stdout. */
function startWriter(database: string, journalMode: 'wal' | 'delete'): Promise<ChildProcess> {
  const script = `
    import { DatabaseSync } from 'node:sqlite'
    const db = new DatabaseSync(${JSON.stringify(database)})
    db.exec('PRAGMA busy_timeout = 10000')
    db.exec('PRAGMA journal_mode = ${journalMode}')
    const insert = db.prepare("INSERT INTO users(name, bio) VALUES (?, randomblob(500))")
    for (let i = 0; ; i++) {
      db.exec('BEGIN IMMEDIATE')
      for (let j = 0; j < 20; j++) insert.run('writer ' + i + '/' + j)
      db.exec('COMMIT')
      if (i % 10 === 0) process.stdout.write('.')
    }`
  const child = spawn(process.execPath, ['--no-warnings', '--input-type=module', '-e', script], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  // Resolve once the writer has committed a few times, so the backup really races it.
  return new Promise((resolve, reject) => {
    let seen = 0
    child.stdout?.on('data', (data: Buffer) => {
      seen += data.length
      if (seen >= 3) resolve(child)
    })
    child.on('exit', (code) => reject(new Error(`writer exited early with ${code}`)))
  })
}

describe.each(['wal', 'delete'] as const)(
  'sqlite source while another process writes (journal_mode=%s)',
  (mode) => {
    let project: Project
    let writer: ChildProcess | undefined
    beforeAll(async () => {
      project = await createProject()
      expect((await project.run(['init'])).code).toBe(0)
    })
    afterAll(async () => {
      writer?.kill('SIGKILL')
      await project.cleanup()
    })

    it('takes a consistent copy that restores, passes integrity_check and matches the recorded row counts', async () => {
      const database = join(project.dir, 'data', 'app.db')
      const before = Number(sqlite(database, ['SELECT count(*) FROM users']).trim())
      writer = await startWriter(database, mode)
      const backups = []
      for (let i = 0; i < 3; i++) {
        const run = await project.run(['backup', '--source', 'app-db', '--json'])
        expect(run.stderr).not.toContain('kluis:')
        expect(run.code).toBe(0)
        backups.push(JSON.parse(run.stdout).snapshotId as string)
      }
      writer.kill('SIGKILL')
      for (const [i, id] of backups.entries()) {
        // Restore checks PRAGMA integrity_check and every table's row count against the manifest.
        const restored = await project.run([
          'restore',
          '--snapshot',
          id,
          '--target',
          `out-${i}`,
          '--key',
          'keys/reader.key',
        ])
        expect(restored.stderr).not.toContain('kluis:')
        expect(restored.code).toBe(0)
        const rows = Number(
          sqlite(join(project.dir, `out-${i}`, 'app-db', 'app.db'), [
            'SELECT count(*) FROM users',
          ]).trim(),
        )
        expect(rows).toBeGreaterThanOrEqual(before)
        expect((rows - before) % 20).toBe(0) // whole transactions only
      }
      const after = Number(sqlite(database, ['SELECT count(*) FROM users']).trim())
      expect(after).toBeGreaterThan(before) // the writer really wrote during the backups
    })
  },
)
