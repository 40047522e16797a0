import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { MemoryReporter } from '../src/core/reporter.js'
import { RepositoryLock } from '../src/repository/locks.js'
import { Repository } from '../src/repository/repository.js'
import { objectLockRenewalWarning, renewObjectLocks } from '../src/retention/object-lock-renewal.js'
import { LocalStorage } from '../src/storage/local.js'
import { createProject, exampleConfig, type Project } from './support/project.js'

/**
 * A local repository that behaves, for locks, like a bucket with storage.object-lock: it records
 * every extension (S3 and Azure send them as tested in storage-s3 and storage-azure).
 */
class LockedStorage extends LocalStorage {
  readonly objectLockDays = 400
  readonly extended = new Map<string, Date>()
  failOn: string | undefined

  async extendObjectLock(name: string, until: Date): Promise<void> {
    if (name === this.failOn) throw new Error(`AccessDenied for ${name}`)
    this.extended.set(name, until)
  }
}

const DAY = 24 * 60 * 60 * 1000

describe('object lock renewal', () => {
  let project: Project
  afterEach(async () => {
    await project?.cleanup()
  })

  it('renews every lasting object once half the lock period has passed, and records the round', async () => {
    project = await createProject()
    expect((await project.run(['init'])).code).toBe(0)
    expect((await project.run(['backup'])).code).toBe(0)
    const storage = new LockedStorage(join(project.dir, 'backup-repo'))
    const repository = await Repository.open(storage)
    const created = new Date(repository.config.created).getTime()
    const at = (days: number) => new Date(created + days * DAY)
    const reporter = new MemoryReporter()
    const lock = await RepositoryLock.acquire(storage, { kind: 'exclusive', command: 'prune' })
    const stored: string[] = []
    for await (const object of storage.list('')) stored.push(object.name)

    // Every object still carries the lock it was written with.
    expect(await renewObjectLocks(repository, at(199), reporter)).toBeUndefined()
    expect(storage.extended.size).toBe(0)
    expect(await objectLockRenewalWarning(repository, at(199))).toBeUndefined()
    expect(await objectLockRenewalWarning(repository, at(202))).toMatch(
      /has not been renewed and may run out on .+: run kluis prune/,
    )

    // Half the period is over: everything but locks is locked for a full period from now.
    const round = await renewObjectLocks(repository, at(201), reporter)
    const lasting = stored.filter((name) => !name.startsWith('locks/'))
    expect(round).toEqual({ renewed: lasting.length, until: at(601) })
    expect([...storage.extended.keys()].sort()).toEqual(lasting.sort())
    expect(lasting).toEqual(
      expect.arrayContaining([
        'config.json',
        'keys/default.pgp',
        expect.stringMatching(/^chunks\//),
        expect.stringMatching(/^snapshots\/.+\.json\.asc$/),
        expect.stringMatching(/^snapshots\/.+\.manifest\.pgp$/),
      ]),
    )
    expect(new Set([...storage.extended.values()].map((until) => until.getTime()))).toEqual(
      new Set([at(601).getTime()]),
    )
    expect(reporter.infos).toContain(
      `extended the object lock of ${lasting.length} object(s) to ${at(601).toISOString().slice(0, 10)}`,
    )

    // The next round is due half a period after this one, not after the repository's creation.
    storage.extended.clear()
    expect(await renewObjectLocks(repository, at(300), reporter)).toBeUndefined()
    expect(storage.extended.size).toBe(0)
    expect(await objectLockRenewalWarning(repository, at(300))).toBeUndefined()

    // An extension refused: a warning, no round recorded, and the next prune tries again.
    storage.failOn = 'config.json'
    expect(await renewObjectLocks(repository, at(402), reporter)).toBeUndefined()
    expect(reporter.warnings).toEqual([
      expect.stringMatching(
        /could not extend the object lock of 1 of \d+ object\(s\), first config\.json: AccessDenied .*s3:PutObjectRetention/,
      ),
    ])
    expect(await objectLockRenewalWarning(repository, at(402))).toBeDefined()
    storage.failOn = undefined
    expect((await renewObjectLocks(repository, at(403), reporter))?.until).toEqual(at(803))

    // prune --renew-locks: a round now, though the last one is a day old.
    storage.extended.clear()
    const forced = await renewObjectLocks(repository, at(404), reporter, { force: true })
    expect(forced?.until).toEqual(at(804))
    expect(storage.extended.size).toBe(lasting.length)
    await lock.release()
  })

  it('does nothing where objects are written without a lock', async () => {
    project = await createProject({
      config: exampleConfig.replace('sources:', 'retention: { keep-last: 3 }\nsources:'),
    })
    expect((await project.run(['init'])).code).toBe(0)
    const storage = new LocalStorage(join(project.dir, 'backup-repo'))
    const repository = await Repository.open(storage)
    const later = new Date(Date.now() + 1000 * DAY)
    expect(await renewObjectLocks(repository, later, new MemoryReporter())).toBeUndefined()
    expect(await objectLockRenewalWarning(repository, later)).toBeUndefined()
    const pruned = await project.run(['prune', '--renew-locks'])
    expect(pruned.code, pruned.stderr).toBe(0)
    expect(pruned.stderr).toContain('no object lock to renew: storage.object-lock is not set')
  })
})
