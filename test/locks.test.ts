import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest'
import { RefusedError, StorageError } from '../src/core/errors.js'
import {
  type LockInfo,
  LockLostError,
  type LockOptions,
  listLocks,
  type MalformedLock,
  RepositoryLock,
  removeLocks,
} from '../src/repository/locks.js'
import { LocalStorage } from '../src/storage/local.js'
import type { StorageBackend } from '../src/storage/storage.js'

const TTL = 60_000
const roots: string[] = []
const held: RepositoryLock[] = []

afterEach(async () => {
  for (const lock of held.splice(0)) await lock.release().catch(() => {})
})
afterAll(async () => {
  for (const root of roots) await rm(root, { recursive: true, force: true })
})

async function freshStorage(): Promise<LocalStorage> {
  const root = await mkdtemp(join(tmpdir(), 'kluis-locks-'))
  roots.push(root)
  return new LocalStorage(root)
}

/** A clock that moves only when told. */
function fakeClock(start = '2026-03-01T02:00:00.000Z') {
  let time = Date.parse(start)
  return {
    now: () => new Date(time),
    advance: (ms: number) => {
      time += ms
    },
  }
}

async function acquire(
  storage: StorageBackend,
  options: Partial<LockOptions> & Pick<LockOptions, 'kind'>,
): Promise<RepositoryLock> {
  const lock = await RepositoryLock.acquire(storage, {
    command: options.kind === 'exclusive' ? 'prune' : 'backup',
    ttl: TTL,
    ...options,
  })
  held.push(lock)
  return lock
}

async function lockObjects(storage: StorageBackend): Promise<string[]> {
  const names: string[] = []
  for await (const object of storage.list('locks/')) names.push(object.name)
  return names.sort()
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

describe('repository locks: who blocks whom', () => {
  it('lets shared locks coexist', async () => {
    const storage = await freshStorage()
    const a = await acquire(storage, { kind: 'shared' })
    const b = await acquire(storage, { kind: 'shared' })
    expect(a.info.id).not.toBe(b.info.id)
    expect((await listLocks(storage)).map((l) => l.id).sort()).toEqual(
      [a.info.id, b.info.id].sort(),
    )
    a.assertHeld()
    b.assertHeld()
  })

  it('refuses a shared lock while an exclusive one is held, naming the holder', async () => {
    const storage = await freshStorage()
    const { now } = fakeClock()
    await acquire(storage, { kind: 'exclusive', command: 'prune', host: 'host-a', pid: 111, now })
    const attempt = acquire(storage, { kind: 'shared', now })
    await expect(attempt).rejects.toBeInstanceOf(RefusedError)
    await expect(attempt).rejects.toThrow(
      'repository is locked by prune on host host-a (pid 111) since 2026-03-01 02:00:00 UTC',
    )
    const error = (await attempt.catch((e: unknown) => e)) as RefusedError
    expect(error.hint).toContain('stale at 2026-03-01 02:01:00 UTC if that process died')
    expect(error.hint).toContain('`kluis unlock --stale-only`')
    // The refused attempt took its own lock object away again.
    expect(await lockObjects(storage)).toHaveLength(1)
  })

  it('refuses an exclusive lock while a shared one is held', async () => {
    const storage = await freshStorage()
    await acquire(storage, { kind: 'shared', command: 'backup', host: 'ci-7', pid: 4242 })
    await expect(acquire(storage, { kind: 'exclusive' })).rejects.toThrow(
      /locked by backup on host ci-7 \(pid 4242\)/,
    )
    await expect(acquire(storage, { kind: 'exclusive' })).rejects.toBeInstanceOf(RefusedError)
    expect(await lockObjects(storage)).toHaveLength(1)
  })

  it('waits for the holder to release when asked to wait', async () => {
    const storage = await freshStorage()
    const prune = await acquire(storage, { kind: 'exclusive', host: 'host-a', pid: 7 })
    const onWait = vi.fn()
    setTimeout(() => void prune.release(), 150)
    const started = Date.now()
    const backup = await acquire(storage, { kind: 'shared', wait: 5000, onWait })
    expect(Date.now() - started).toBeGreaterThanOrEqual(140)
    backup.assertHeld()
    expect(onWait).toHaveBeenCalledTimes(1)
    expect(onWait.mock.calls[0]?.[0]).toMatchObject({ command: 'prune', host: 'host-a', pid: 7 })
    expect(await lockObjects(storage)).toEqual([`locks/${backup.info.id}-0.json`])
  })

  it('gives up when the wait is over, saying how long it waited', async () => {
    const storage = await freshStorage()
    await acquire(storage, { kind: 'shared' })
    await expect(acquire(storage, { kind: 'exclusive', wait: 200 })).rejects.toThrow(/waited/)
    expect(await lockObjects(storage)).toHaveLength(1)
  })

  it('never lets two racing exclusive acquirers both win', async () => {
    const storage = await freshStorage()
    for (let round = 0; round < 20; round++) {
      const results = await Promise.allSettled([
        RepositoryLock.acquire(storage, { kind: 'exclusive', command: 'prune', ttl: TTL }),
        RepositoryLock.acquire(storage, { kind: 'exclusive', command: 'prune', ttl: TTL }),
      ])
      const winners = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []))
      expect(winners.length).toBeLessThanOrEqual(1)
      for (const result of results) {
        if (result.status === 'rejected') expect(result.reason).toBeInstanceOf(RefusedError)
      }
      for (const winner of winners) await winner.release()
      expect(await lockObjects(storage)).toEqual([])
    }
  })

  it('serialises racing exclusive holders that wait, and keeps shared ones out meanwhile', async () => {
    const storage = await freshStorage()
    let exclusive = 0
    let shared = 0
    const hold = async (kind: 'shared' | 'exclusive') => {
      const lock = await RepositoryLock.acquire(storage, {
        kind,
        command: kind,
        ttl: TTL,
        wait: 2000,
      })
      try {
        if (kind === 'exclusive') exclusive++
        else shared++
        expect(exclusive).toBeLessThanOrEqual(1)
        if (exclusive > 0) expect(shared).toBe(0)
        await sleep(2)
        lock.assertHeld()
      } finally {
        if (kind === 'exclusive') exclusive--
        else shared--
        await lock.release()
      }
    }
    for (let round = 0; round < 20; round++) {
      await Promise.all([hold('exclusive'), hold('exclusive'), hold('shared'), hold('shared')])
    }
    expect(await lockObjects(storage)).toEqual([])
  })
})

describe('repository locks: staleness and refresh', () => {
  it('passes over a lock whose holder stopped refreshing, once its ttl is over', async () => {
    const storage = await freshStorage()
    const clock = fakeClock()
    const backup = await acquire(storage, { kind: 'shared', host: 'laptop', pid: 55, ...clock })
    clock.advance(TTL)
    await expect(acquire(storage, { kind: 'exclusive', now: clock.now })).rejects.toThrow(
      'locked by backup on host laptop (pid 55)',
    )
    clock.advance(1)
    const onStale = vi.fn()
    const prune = await acquire(storage, { kind: 'exclusive', now: clock.now, onStale })
    prune.assertHeld()
    expect(onStale).toHaveBeenCalledTimes(1)
    expect(onStale.mock.calls[0]?.[0]).toEqual(backup.info)
    expect((await listLocks(storage, clock)).map((l) => [l.id, l.stale])).toEqual([
      [backup.info.id, true],
      [prune.info.id, false],
    ])
  })

  it('stays fresh while refreshed, leaving one object per lock', async () => {
    const storage = await freshStorage()
    const clock = fakeClock()
    const prune = await acquire(storage, { kind: 'exclusive', ...clock })
    const created = prune.info.created
    for (let i = 0; i < 4; i++) {
      clock.advance(TTL / 3)
      await prune.refresh()
      prune.assertHeld()
    }
    clock.advance(TTL / 3)
    // 100 s since it was created, 20 s since its last refresh: still live.
    await expect(acquire(storage, { kind: 'shared', now: clock.now })).rejects.toThrow(
      'locked by prune',
    )
    expect(prune.info.created).toBe(created)
    expect(prune.info.refreshed).toBe('2026-03-01T02:01:20.000Z')
    expect(await lockObjects(storage)).toEqual([`locks/${prune.info.id}-4.json`])
    const [listed] = await listLocks(storage, clock)
    expect(listed).toEqual({ ...prune.info, stale: false })
  })

  it('refreshes by itself every ttl/6', async () => {
    const storage = await freshStorage()
    const lock = await acquire(storage, { kind: 'shared', ttl: 600 })
    await sleep(350)
    const objects = await lockObjects(storage)
    expect(objects).toHaveLength(1)
    expect(objects[0]).not.toBe(`locks/${lock.info.id}-0.json`)
    expect(lock.info.refreshed > lock.info.created).toBe(true)
    lock.assertHeld()
    await lock.release()
    await sleep(150)
    expect(await lockObjects(storage)).toEqual([])
  })

  it('recognises the lock of a process killed with SIGKILL as stale, and unlock removes it', async () => {
    const storage = await freshStorage()
    const clock = fakeClock()
    // What a backup killed two hours ago leaves: one lock object, never refreshed again.
    const dead: LockInfo = {
      id: 'd'.repeat(32),
      kind: 'shared',
      host: 'runner-3',
      pid: 999_999,
      command: 'backup',
      created: '2026-03-01T00:00:00.000Z',
      refreshed: '2026-03-01T00:05:00.000Z',
      ttl: 30 * 60 * 1000,
    }
    await storage.putIfAbsent(`locks/${dead.id}-1.json`, Buffer.from(JSON.stringify(dead)))
    const onStale = vi.fn()
    const prune = await acquire(storage, { kind: 'exclusive', now: clock.now, onStale })
    expect(onStale).toHaveBeenCalledWith(dead)
    await prune.release()

    const live = await acquire(storage, { kind: 'shared', now: clock.now })
    expect(await removeLocks(storage, { staleOnly: true, now: clock.now })).toEqual([dead])
    expect((await listLocks(storage, clock)).map((l) => l.id)).toEqual([live.info.id])
    expect(await removeLocks(storage, { staleOnly: false, now: clock.now })).toEqual([live.info])
    expect(await lockObjects(storage)).toEqual([])
  })

  it('removes every object a crashed refresh left of one lock', async () => {
    const storage = await freshStorage()
    const clock = fakeClock()
    const base = {
      id: 'e'.repeat(32),
      kind: 'exclusive',
      host: 'h',
      pid: 1,
      command: 'prune',
      created: '2026-03-01T00:00:00.000Z',
      ttl: 60_000,
    }
    // Killed between writing the refreshed object and deleting the previous one.
    await storage.putIfAbsent(
      `locks/${base.id}-2.json`,
      Buffer.from(JSON.stringify({ ...base, refreshed: '2026-03-01T00:10:00.000Z' })),
    )
    await storage.putIfAbsent(
      `locks/${base.id}-3.json`,
      Buffer.from(JSON.stringify({ ...base, refreshed: '2026-03-01T00:11:00.000Z' })),
    )
    const locks = await listLocks(storage, clock)
    expect(locks).toHaveLength(1)
    expect(locks[0]?.refreshed).toBe('2026-03-01T00:11:00.000Z')
    await removeLocks(storage, { staleOnly: true, now: clock.now })
    expect(await lockObjects(storage)).toEqual([])
  })
})

describe('repository locks: losing one', () => {
  it('is lost once a refresh finds it removed by unlock --all', async () => {
    const storage = await freshStorage()
    const clock = fakeClock()
    const onLost = vi.fn()
    const prune = await acquire(storage, { kind: 'exclusive', ...clock, onLost })
    expect(await removeLocks(storage, { staleOnly: false, now: clock.now })).toHaveLength(1)
    prune.assertHeld() // nobody has noticed yet
    clock.advance(TTL / 6)
    await expect(prune.refresh()).rejects.toBeInstanceOf(LockLostError)
    expect(() => prune.assertHeld()).toThrow(/no longer held: it was removed from the repository/)
    expect(onLost).toHaveBeenCalledTimes(1)
    // The refresh took back what it had just written: unlock's wish stands.
    expect(await lockObjects(storage)).toEqual([])
    await expect(prune.refresh()).rejects.toBeInstanceOf(LockLostError)
    await prune.release()
  })

  it('is not held after release; releasing twice is fine', async () => {
    const storage = await freshStorage()
    const lock = await acquire(storage, { kind: 'shared' })
    await lock.release()
    await lock.release()
    expect(() => lock.assertHeld()).toThrow(LockLostError)
    expect(() => lock.assertHeld()).toThrow('it was released')
    expect(await lockObjects(storage)).toEqual([])
  })

  it('is lost when a refresh fails', async () => {
    const storage = await freshStorage()
    let failing = false
    const flaky: StorageBackend = Object.create(storage, {
      putIfAbsent: {
        value: (name: string, data: Buffer) => {
          if (failing) return Promise.reject(new StorageError('network is down'))
          return storage.putIfAbsent(name, data)
        },
      },
    })
    const lock = await acquire(flaky, { kind: 'exclusive' })
    failing = true
    await expect(lock.refresh()).rejects.toThrow(LockLostError)
    expect(() => lock.assertHeld()).toThrow(/refreshing it failed: network is down/)
    await lock.release()
    expect(await lockObjects(storage)).toEqual([])
  })

  it('is no longer trusted when it went unrefreshed for half its ttl (a sleeping machine)', async () => {
    const storage = await freshStorage()
    const clock = fakeClock()
    const lock = await acquire(storage, { kind: 'exclusive', ...clock })
    clock.advance(TTL / 2)
    lock.assertHeld()
    clock.advance(1)
    expect(() => lock.assertHeld()).toThrow(/last refreshed 30\.0s ago/)
    await expect(lock.refresh()).rejects.toBeInstanceOf(LockLostError)
  })
})

describe('repository locks: objects that are not locks', () => {
  it('passes over malformed lock objects, reports them, and unlock removes them', async () => {
    const storage = await freshStorage()
    await storage.putIfAbsent(`locks/${'a'.repeat(32)}-0.json`, Buffer.from('{"id": tru'))
    await storage.putIfAbsent(`locks/${'b'.repeat(32)}-0.json`, Buffer.alloc(0))
    await storage.putIfAbsent('locks/notes.txt', Buffer.from('hello'))
    await storage.putIfAbsent(
      `locks/${'c'.repeat(32)}-0.json`,
      Buffer.from(JSON.stringify({ id: 'f'.repeat(32), kind: 'exclusive' })),
    )
    const malformed: MalformedLock[] = []
    const lock = await acquire(storage, {
      kind: 'exclusive',
      onMalformed: (m) => malformed.push(m),
    })
    lock.assertHeld()
    expect(malformed.map((m) => m.reason).sort()).toEqual([
      'empty',
      'its id does not match its name',
      'not JSON',
      'not a lock object name',
    ])
    await lock.release()
    const removed: MalformedLock[] = []
    expect(
      await removeLocks(storage, { staleOnly: true, onMalformed: (m) => removed.push(m) }),
    ).toEqual([])
    expect(removed).toHaveLength(4)
    expect(await lockObjects(storage)).toEqual([])
  })

  it('honours a lock of an unknown kind as exclusive, and cleans the text it shows', async () => {
    const storage = await freshStorage()
    const clock = fakeClock()
    const future = {
      id: '1'.repeat(32),
      kind: 'append-only',
      host: 'evil\u001b[2Jhost\n::error::x',
      pid: 3,
      command: 'x'.repeat(500),
      created: clock.now().toISOString(),
      refreshed: clock.now().toISOString(),
      ttl: TTL,
      extra: 'ignored',
    }
    await storage.putIfAbsent(`locks/${future.id}-0.json`, Buffer.from(JSON.stringify(future)))
    const error = await acquire(storage, { kind: 'shared', now: clock.now }).catch((e) => e)
    expect(error).toBeInstanceOf(RefusedError)
    expect(error.message).toContain('on host evil?[2Jhost?::error::x (pid 3)')
    expect(error.message).not.toContain('\n')
    expect(error.message).not.toContain('\u001b')
    const [listed] = await listLocks(storage, clock)
    expect(listed?.kind).toBe('exclusive')
    expect(listed?.command).toHaveLength(201)
  })
})
