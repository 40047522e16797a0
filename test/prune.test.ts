import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdir, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { check } from '../src/commands/check.js'
import { whileReading } from '../src/commands/locking.js'
import { loadConfig } from '../src/config/config.js'
import { silentReporter } from '../src/core/reporter.js'
import { RepositoryLock } from '../src/repository/locks.js'
import { LocalStorage } from '../src/storage/local.js'
import { type CliRun, createProject, exampleConfig, type Project } from './support/project.js'

const cli = new URL('../dist/cli.js', import.meta.url).pathname

const withRetention = (retention: string, extra = '') =>
  `${exampleConfig.replace('sources:', `retention: ${retention}\n${extra}sources:`)}`

interface Listed {
  id: string
  time: string
}

/** Runs the built CLI as a real, separate process (the way two scheduled jobs meet). */
function cliProcess(
  project: Project,
  args: string[],
): { done: Promise<CliRun>; pid: number | undefined; kill(): void } {
  const child = spawn(process.execPath, [cli, ...args, '--config', 'kluis.yml'], {
    cwd: project.dir,
    env: { ...process.env, KLUIS_READER_KEY: undefined },
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d) => {
    stdout += d
  })
  child.stderr.on('data', (d) => {
    stderr += d
  })
  const done = new Promise<CliRun>((resolve) =>
    child.once('close', (code) => resolve({ code: code ?? -1, stdout, stderr })),
  )
  return { done, pid: child.pid, kill: () => child.kill('SIGKILL') }
}

describe('prune, locks and monitoring', () => {
  let project: Project
  afterEach(async () => {
    await project?.cleanup()
  })

  async function snapshots(): Promise<Listed[]> {
    const listed = await project.run(['snapshots', '--json'])
    expect(listed.code, listed.stderr).toBe(0)
    return JSON.parse(listed.stdout) as Listed[]
  }

  async function backupAt(time: string): Promise<void> {
    await writeFile(
      join(project.dir, 'data', 'uploads', `at-${time.slice(0, 10)}.bin`),
      randomBytes(2048),
    )
    const run = await project.run(['backup', '--time', time])
    expect(run.code, run.stderr).toBe(0)
  }

  it('keeps what the policy says, removes the rest, and every kept snapshot still restores', async () => {
    project = await createProject({ config: withRetention('{ keep-daily: 3, keep-monthly: 2 }') })
    expect((await project.run(['init'])).code).toBe(0)
    // Two a day on Nov 20-24, one on Oct 31 and Sep 30: daily keeps the newest of Nov 24, 23, 22;
    // monthly keeps the newest of November (already kept) and of October.
    for (const time of ['2026-09-30T10:00:00Z', '2026-10-31T10:00:00Z']) await backupAt(time)
    for (const day of [20, 21, 22, 23, 24]) {
      await backupAt(`2026-11-${day}T06:00:00Z`)
      await backupAt(`2026-11-${day}T18:00:00Z`)
    }
    const before = await snapshots()
    expect(before).toHaveLength(12)

    const dry = await project.run(['prune', '--dry-run', '--json'])
    expect(dry.code, dry.stderr).toBe(0)
    const planned = JSON.parse(dry.stdout) as {
      decisions: Array<{ time: string; keep: boolean; reasons: string[] }>
    }
    const kept = planned.decisions.filter((d) => d.keep).map((d) => d.time)
    expect(kept).toEqual([
      '2026-11-24T18:00:00.000Z',
      '2026-11-23T18:00:00.000Z',
      '2026-11-22T18:00:00.000Z',
      '2026-10-31T10:00:00.000Z',
    ])
    const newest = planned.decisions[0]
    expect(newest?.reasons).toEqual(
      expect.arrayContaining([
        expect.stringContaining('daily snapshot 1 of 3'),
        expect.stringContaining('monthly snapshot 1 of 2'),
      ]),
    )
    expect(await snapshots()).toHaveLength(12) // the dry run changed nothing

    const text = await project.run(['prune', '--dry-run'])
    expect(text.stdout).toContain('not kept by any rule')
    expect(text.stdout).toContain('nothing was changed')

    const pruned = await project.run(['prune', '--json'])
    expect(pruned.code, pruned.stderr).toBe(0)
    const result = JSON.parse(pruned.stdout) as { removedSnapshots: number; removedChunks: number }
    expect(result.removedSnapshots).toBe(8)
    expect(result.removedChunks).toBeGreaterThan(0) // the files only removed snapshots held
    const after = await snapshots()
    expect(
      after
        .map((s) => s.time)
        .sort()
        .reverse(),
    ).toEqual(kept)

    const checked = await project.run(['check', '--read-data', '--key', 'keys/reader.key'])
    expect(checked.code, checked.stdout + checked.stderr).toBe(0)
    expect(checked.stdout).toContain('no problems found')
    for (const snapshot of after) {
      const target = `restored-${snapshot.id.slice(0, 8)}`
      const restored = await project.run([
        'restore',
        '--snapshot',
        snapshot.id,
        '--target',
        target,
        '--key',
        'keys/reader.key',
      ])
      expect(restored.code, restored.stderr).toBe(0)
      const files = await readdir(join(project.dir, target, 'uploads'))
      expect(files).toContain(`at-${snapshot.time.slice(0, 10)}.bin`)
    }
  }, 120_000)

  it('ignores a planted index: it can push no real snapshot out of retention', async () => {
    project = await createProject({ config: withRetention('{ keep-last: 1 }') })
    expect((await project.run(['init'])).code).toBe(0)
    await backupAt('2026-11-24T06:00:00Z')
    const [real] = await snapshots()
    // An attacker with storage access copies the index under a newer-looking id and time.
    const indexes = join(project.dir, 'backup-repo', 'snapshots')
    const original = await readFile(join(indexes, `${real?.id}.json.asc`), 'utf8')
    const planted = original.replace('2026-11-24T06:00:00.000Z', '2026-12-24T06:00:00.000Z')
    await writeFile(join(indexes, `${'f'.repeat(32)}.json.asc`), planted)
    const pruned = await project.run(['prune', '--json'])
    expect(pruned.code, pruned.stderr).toBe(0)
    expect(pruned.stderr).toContain('ignored')
    expect(JSON.parse(pruned.stdout).removedSnapshots).toBe(0)
    const restored = await project.run([
      'restore',
      '--snapshot',
      real?.id ?? '',
      '--target',
      'out',
      '--key',
      'keys/reader.key',
    ])
    expect(restored.code, restored.stderr).toBe(0)
  })

  it('keeps the chunks a damaged index names: it may be repaired, so prune deletes none of them', async () => {
    project = await createProject({ config: withRetention('{ keep-last: 1 }') })
    expect((await project.run(['init'])).code).toBe(0)
    await backupAt('2026-11-20T06:00:00Z')
    await backupAt('2026-11-21T06:00:00Z')
    const [older] = await snapshots()
    const indexPath = join(project.dir, 'backup-repo', 'snapshots', `${older?.id}.json.asc`)
    const damaged = (await readFile(indexPath, 'utf8')).replace('"host": "', '"host": "x')
    await rm(indexPath)
    await writeFile(indexPath, damaged)
    const countChunks = async () =>
      (await readdir(join(project.dir, 'backup-repo', 'chunks'), { recursive: true })).filter(
        (name) => /[0-9a-f]{64}$/.test(name),
      ).length
    const before = await countChunks()
    const pruned = await project.run(['prune', '--json'])
    expect(pruned.code, pruned.stderr).toBe(0)
    expect(pruned.stderr).toContain(`snapshots/${older?.id}.json.asc`)
    expect(await countChunks()).toBe(before)
  })

  it('runs safely next to backups in other processes, in both orders', async () => {
    project = await createProject({ config: withRetention('{ keep-last: 2 }') })
    expect((await project.run(['init'])).code).toBe(0)
    for (const day of [20, 21, 22]) await backupAt(`2026-11-${day}T06:00:00Z`)
    // Enough data that a backup takes a while.
    await writeFile(
      join(project.dir, 'data', 'uploads', 'large.bin'),
      randomBytes(24 * 1024 * 1024),
    )

    // A backup running, then a prune: the prune waits for it.
    const backupFirst = cliProcess(project, ['backup'])
    await waitForLock(project)
    const pruneSecond = cliProcess(project, ['prune'])
    const [b1, p1] = await Promise.all([backupFirst.done, pruneSecond.done])
    expect(b1.code, b1.stderr).toBe(0)
    expect(p1.code, p1.stderr).toBe(0)

    // A prune running, then a backup: the backup waits for it.
    await writeFile(
      join(project.dir, 'data', 'uploads', 'large2.bin'),
      randomBytes(8 * 1024 * 1024),
    )
    const pruneFirst = cliProcess(project, ['prune'])
    const backupSecond = cliProcess(project, ['backup'])
    const [p2, b2] = await Promise.all([pruneFirst.done, backupSecond.done])
    expect(p2.code, p2.stderr).toBe(0)
    expect(b2.code, b2.stderr).toBe(0)

    const checked = await project.run(['check', '--read-data', '--key', 'keys/reader.key'])
    expect(checked.code, checked.stdout + checked.stderr).toBe(0)
    for (const snapshot of await snapshots()) {
      const restored = await project.run([
        'restore',
        '--snapshot',
        snapshot.id,
        '--target',
        `r-${snapshot.id.slice(0, 8)}`,
        '--key',
        'keys/reader.key',
      ])
      expect(restored.code, restored.stderr).toBe(0)
    }
  }, 180_000)

  it('a restore waits for a running prune, and a prune for a running restore', async () => {
    project = await createProject({ config: withRetention('{ keep-last: 1 }') })
    expect((await project.run(['init'])).code).toBe(0)
    await backupAt('2026-11-20T06:00:00Z')
    await backupAt('2026-11-21T06:00:00Z')
    const [oldest] = await snapshots()
    const storage = new LocalStorage(join(project.dir, 'backup-repo'))
    // What a run has done after a second: 'waiting', or its result (which the failure shows).
    const afterASecond = (run: Promise<CliRun>) =>
      Promise.race([run, new Promise((resolve) => setTimeout(() => resolve('waiting'), 1000))])

    // A prune holds the repository: restoring the snapshot it may be removing waits for it.
    const prune = await RepositoryLock.acquire(storage, { kind: 'exclusive', command: 'prune' })
    const restoring = project.run([
      'restore',
      '--snapshot',
      oldest?.id ?? '',
      '--target',
      'r',
      '--key',
      'keys/reader.key',
    ])
    expect(await afterASecond(restoring)).toBe('waiting')
    await prune.release()
    const restored = await restoring
    expect(restored.code, restored.stderr).toBe(0)
    expect(restored.stdout + restored.stderr).toMatch(/waiting for prune on .+ \(pid \d+\)/)

    // A restore is reading: the prune that would remove its snapshot waits until it is done.
    let finishReading = () => {}
    let nowReading = () => {}
    const lockHeld = new Promise<void>((resolve) => {
      nowReading = resolve
    })
    const reading = whileReading(storage, 'restore', silentReporter, async () => {
      nowReading()
      await new Promise<void>((resolve) => {
        finishReading = resolve
      })
      return (await snapshots()).length
    })
    await lockHeld
    const pruning = project.run(['prune'])
    expect(await afterASecond(pruning)).toBe('waiting')
    finishReading()
    expect(await reading).toBe(2)
    const pruned = await pruning
    expect(pruned.code, pruned.stderr).toBe(0)
    expect(pruned.stdout + pruned.stderr).toContain('waiting for restore')
    expect(await snapshots()).toHaveLength(1)
  }, 60_000)

  it('removes the temporary files that killed writes left, once they are an hour old', async () => {
    project = await createProject({ config: withRetention('{ keep-last: 2 }') })
    expect((await project.run(['init'])).code).toBe(0)
    await backupAt('2026-11-20T06:00:00Z')
    const repo = join(project.dir, 'backup-repo')
    const [chunk] = (await readdir(join(repo, 'chunks'), { recursive: true })).filter((name) =>
      /[0-9a-f]{64}$/.test(name),
    )
    const old = [
      join(repo, 'chunks', `${chunk}.tmp-0123456789ab`),
      join(repo, 'locks', 'deadbeef-1.json.tmp-ba9876543210'),
    ]
    const fresh = join(repo, 'chunks', `${chunk}.tmp-fedcba987654`)
    const twoHoursAgo = new Date(Date.now() - 2 * 60 * 60 * 1000)
    for (const file of [...old, fresh]) {
      await mkdir(dirname(file), { recursive: true })
      await writeFile(file, randomBytes(1000))
    }
    for (const file of old) await utimes(file, twoHoursAgo, twoHoursAgo)

    const pruned = await project.run(['prune'])

    expect(pruned.code, pruned.stderr).toBe(0)
    expect(pruned.stdout + pruned.stderr).toContain(
      'removed 2 temporary file(s) that interrupted writes left (1.95 KiB)',
    )
    for (const file of old) expect(existsSync(file), file).toBe(false)
    expect(existsSync(fresh)).toBe(true)
    const checked = await project.run(['check', '--read-data', '--key', 'keys/reader.key'])
    expect(checked.code, checked.stdout + checked.stderr).toBe(0)
  })

  it('a backup killed with SIGKILL leaves a lock that expires; unlock --stale-only removes it', async () => {
    project = await createProject({ config: withRetention('{ keep-last: 2 }') })
    expect((await project.run(['init'])).code).toBe(0)
    await writeFile(
      join(project.dir, 'data', 'uploads', 'large.bin'),
      randomBytes(24 * 1024 * 1024),
    )
    const killed = cliProcess(project, ['backup'])
    const lockFile = await waitForLock(project)
    killed.kill()
    await killed.done
    // Time passes: the dead process stopped refreshing its lock an hour ago.
    const lockPath = join(project.dir, 'backup-repo', 'locks', lockFile)
    const lock = JSON.parse(await readFile(lockPath, 'utf8'))
    lock.refreshed = new Date(Date.now() - 60 * 60 * 1000).toISOString()
    await rm(lockPath)
    await writeFile(lockPath, JSON.stringify(lock))

    const pruned = await project.run(['prune'])
    expect(pruned.code, pruned.stderr).toBe(0)
    expect(pruned.stderr).toContain('stale lock of backup')
    // The dead backup's lock is still there (a write it was killed in may have left a temporary file).
    const remaining = (await readdir(join(project.dir, 'backup-repo', 'locks'))).filter((name) =>
      name.endsWith('.json'),
    )
    expect(remaining, remaining.join(' ')).toHaveLength(1)
    const unlocked = await project.run(['unlock', '--stale-only'])
    expect(unlocked.code, unlocked.stderr).toBe(0)
    expect(unlocked.stdout).toContain('removed the lock of backup')
    // Only lock objects count: a temporary file the kill left is prune's to sweep, an hour on.
    const locksLeft = (await readdir(join(project.dir, 'backup-repo', 'locks'))).filter((name) =>
      name.endsWith('.json'),
    )
    expect(locksLeft).toEqual([])
  }, 120_000)

  it('check fails when a source has no snapshot within --max-age, and warns about old keys', async () => {
    project = await createProject({
      config: withRetention('{ keep-daily: 30 }', 'objectives: { rpo: 24h, key-max-age: 90d }\n'),
    })
    expect((await project.run(['init'])).code).toBe(0)
    const twoDaysAgo = new Date(Date.now() - 2 * 86_400_000).toISOString()
    expect((await project.run(['backup', '--time', twoDaysAgo])).code).toBe(0)
    const stale = await project.run(['check'])
    expect(stale.code).toBe(1)
    expect(stale.stdout).toContain(
      'source app-db: the newest snapshot is 2d0h old, older than 24h0m (RPO)',
    )
    expect((await project.run(['check', '--max-age', '72h'])).code).toBe(0)

    // A planted index with a fresh time cannot hide the stale backup.
    const indexes = join(project.dir, 'backup-repo', 'snapshots')
    const [name] = (await readdir(indexes)).filter((n) => n.endsWith('.json.asc'))
    const text = await readFile(join(indexes, name ?? ''), 'utf8')
    await writeFile(
      join(indexes, `${'e'.repeat(32)}.json.asc`),
      text.replace(twoDaysAgo, new Date().toISOString()),
    )
    const hidden = await project.run(['check', '--max-age', '24h'])
    expect(hidden.code).toBe(1)
    expect(hidden.stdout).toContain('source app-db: the newest snapshot is 2d0h old')

    // A random subset of the chunks is read and verified.
    await rm(join(indexes, `${'e'.repeat(32)}.json.asc`))
    const subset = await project.run([
      'check',
      '--read-data-subset',
      '50%',
      '--max-age',
      '72h',
      '--key',
      'keys/reader.key',
      '--json',
    ])
    expect(subset.code, subset.stderr).toBe(0)
    const counts = JSON.parse(subset.stdout) as { chunksReferenced: number; chunksRead: number }
    expect(counts.chunksRead).toBe(Math.ceil(counts.chunksReferenced / 2))
    expect((await project.run(['check', '--read-data-subset', '150%'])).code).toBe(2)

    const config = await loadConfig(join(project.dir, 'kluis.yml'))
    const later = new Date(Date.now() + 100 * 86_400_000)
    const result = await check(
      config,
      { readData: false, maxAge: 365 * 86_400_000, now: later },
      silentReporter,
      {},
    )
    expect(result.problems).toEqual([])
    expect(result.warnings.join('\n')).toMatch(/the writer key [0-9A-F]{40} is 100 days old/)
    expect(result.newestSnapshotAgeHours).toBeGreaterThan(100 * 24)
  }, 60_000)
})

/** Waits until some process holds a lock on the project's repository; returns its file name. */
async function waitForLock(project: Project): Promise<string> {
  const locks = join(project.dir, 'backup-repo', 'locks')
  const deadline = Date.now() + 20_000
  for (;;) {
    const names = await readdir(locks).catch(() => [] as string[])
    const lock = names.find((name) => name.endsWith('.json'))
    if (lock) return lock
    if (Date.now() > deadline) throw new Error('no lock appeared')
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}
