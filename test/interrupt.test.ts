import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdir, readdir, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createProject, type Project, sqlite } from './support/project.js'

const cli = new URL('../dist/cli.js', import.meta.url).pathname

/** Runs the bundled CLI and sends `signal` once stderr shows `when`; resolves with the exit code. */
function interruptWhen(
  cwd: string,
  args: string[],
  when: string,
  signal: NodeJS.Signals,
  env: NodeJS.ProcessEnv,
) {
  const child = spawn(process.execPath, [cli, ...args], { cwd, env: { ...process.env, ...env } })
  let stderr = ''
  child.stderr.on('data', (data: Buffer) => {
    stderr += data
    if (stderr.includes(when) && !child.killed) child.kill(signal)
  })
  return new Promise<{ code: number | null; stderr: string }>((resolve) =>
    child.on('exit', (code) => resolve({ code, stderr })),
  )
}

describe('an interrupted command leaves nothing behind', () => {
  let project: Project
  const scratch = () => join(project.dir, 'scratch')
  beforeAll(async () => {
    project = await createProject()
    await mkdir(scratch())
    // Enough data that the signal arrives while the work is under way.
    for (let i = 0; i < 6; i++) {
      await writeFile(join(project.dir, 'data', 'uploads', `big-${i}.bin`), randomBytes(32 << 20))
    }
    sqlite(join(project.dir, 'data', 'app.db'), [
      "INSERT INTO users(name, bio) SELECT 'bulk ' || value, randomblob(4000) FROM generate_series(1, 50000)",
    ])
    expect((await project.run(['init'])).code).toBe(0)
    expect((await project.run(['backup'])).code).toBe(0)
  })
  afterAll(() => project.cleanup())

  it('restore: SIGINT removes the staging folder and leaves the target untouched', async () => {
    const run = await interruptWhen(
      project.dir,
      ['restore', '--config', 'kluis.yml', '--target', 'out', '--key', 'keys/reader.key'],
      "restoring files source 'uploads'",
      'SIGINT',
      {},
    )
    expect(run.code, run.stderr).toBe(130)
    expect(run.stderr).toContain('interrupted by SIGINT')
    await expect(stat(join(project.dir, 'out'))).rejects.toThrow()
    expect(
      (await readdir(project.dir)).filter((name) => name.startsWith('.kluis-restore')),
    ).toEqual([])
  })

  it('backup: SIGTERM removes the database copy and writes no snapshot', async () => {
    const before = JSON.parse((await project.run(['snapshots', '--json'])).stdout).length
    const run = await interruptWhen(
      project.dir,
      ['backup', '--config', 'kluis.yml'],
      "with SQLite's online backup API",
      'SIGTERM',
      { KLUIS_TMPDIR: scratch(), KLUIS_DEBUG: '1' },
    )
    expect(run.code, run.stderr).toBe(143)
    expect(await readdir(scratch())).toEqual([])
    expect(JSON.parse((await project.run(['snapshots', '--json'])).stdout)).toHaveLength(before)
    // The chunks that did arrive are valid: the repository checks clean and the next backup works.
    expect((await project.run(['check'])).code).toBe(0)
    expect((await project.run(['backup'])).code).toBe(0)
  })
})
