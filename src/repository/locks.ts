import { randomBytes } from 'node:crypto'
import { hostname } from 'node:os'
import { mapOrdered } from '../core/concurrency.js'
import { errorMessage, RefusedError, StorageError } from '../core/errors.js'
import { formatDuration, formatTime } from '../core/format.js'
import { ObjectNotFoundError, type StorageBackend } from '../storage/storage.js'

/**
 * Repository locks: a backup holds a shared lock, prune an exclusive one, so prune never deletes
 * a chunk that a running backup has uploaded or decided to reuse.
 *
 * Storage offers only write-once objects, listing and deletion: no compare-and-swap, no rename,
 * no server-side clock. So:
 * - Acquiring writes our own lock object first and lists the others afterwards. Of two
 *   conflicting acquirers, whichever lists second sees the other's object (every backend lists
 *   what was written before, consistently), so they can never both win; both may see each other
 *   and back off, and the jitter in the retry delay lets one of them win the next round.
 * - A lock carries its holder's clock time (`refreshed`) and its `ttl`. A holder rewrites it
 *   every ttl/6 as a new object (`locks/<id>-<n>.json`) and then deletes the previous one, so a
 *   holder killed with SIGKILL leaves one object, which goes stale ttl after its last refresh
 *   and then no longer blocks anybody. Stale locks are passed over, reported, and left for
 *   `kluis unlock` to remove.
 * - Because other hosts judge staleness by their own clocks, a holder stops trusting its lock
 *   once its last successful refresh is older than ttl/2 (a machine that slept, a refresh that
 *   kept failing): the other half of the ttl is the margin for clock skew between hosts. From
 *   then on, or once a refresh failed or found the lock removed (`kluis unlock`),
 *   `assertHeld()` throws, and a long operation stops before it changes anything else.
 * - Lock contents are trusted for nothing but blocking: whoever can write to the storage can
 *   deny service anyway (and delete the data). Text shown from a lock is stripped of control
 *   characters and shortened.
 */

export type LockKind = 'shared' | 'exclusive'

export interface LockInfo {
  id: string
  kind: LockKind
  host: string
  pid: number
  /** "backup", "prune": shown to whoever is blocked. */
  command: string
  /** ISO 8601 times on the holder's clock. */
  created: string
  refreshed: string
  /** ms after `refreshed` when it is stale */
  ttl: number
}

export type ListedLock = LockInfo & { stale: boolean }

/** A lock object that cannot be read as a lock: ignored by everyone, removed by unlock. */
export interface MalformedLock {
  object: string
  reason: string
}

export interface LockOptions {
  kind: LockKind
  /** "backup", "prune": shown to whoever is blocked. */
  command: string
  host?: string
  pid?: number
  /** A lock not refreshed for this long is stale (default 30 min); refreshed every ttl/6. */
  ttl?: number
  /** How long to keep retrying while another holder blocks (default 0 = fail at once). */
  wait?: number
  /** The clock (tests) */
  now?: () => Date
  /** Called when a holder blocks us and we wait for it; once per blocking lock. */
  onWait?: (blocker: LockInfo) => void
  /** Called for each stale lock passed over (once per acquire). */
  onStale?: (stale: LockInfo) => void
  /** Called for each unreadable lock object passed over (once per acquire). */
  onMalformed?: (lock: MalformedLock) => void
  /** Called once when the lock is lost (a refresh failed, it was removed, it went stale). */
  onLost?: (error: LockLostError) => void
}

/** The lock can no longer be relied on: whatever the holder was doing must stop. */
export class LockLostError extends RefusedError {}

export const DEFAULT_LOCK_TTL = 30 * 60 * 1000
const LOCKS = 'locks/'
const OBJECT_NAME = /^locks\/([0-9a-f]{32})-(\d{1,15})\.json$/
/** A lock is a few hundred bytes; anything much larger is not one, and is not read. */
const MAX_LOCK_SIZE = 64 * 1024
const MAX_TEXT = 200
/** setInterval's longest delay; a longer one would fire at once. */
const MAX_TIMER = 2 ** 31 - 1

type State = { held: true } | { held: false; reason: string; cause?: unknown; lost: boolean }

export class RepositoryLock {
  /**
   * Writes a lock of `options.kind` and checks that no live conflicting lock exists (exclusive
   * conflicts with anything; shared with exclusive only). While one does, retries with growing,
   * jittered delays until `options.wait` ms have passed, then throws a RefusedError that names
   * the holder. Stale and malformed locks are reported and passed over.
   */
  static async acquire(storage: StorageBackend, options: LockOptions): Promise<RepositoryLock> {
    const ttl = options.ttl ?? DEFAULT_LOCK_TTL
    if (!Number.isFinite(ttl) || ttl <= 0) throw new RangeError(`invalid lock ttl ${ttl}`)
    const wait = Math.max(0, options.wait ?? 0)
    const now = options.now ?? (() => new Date())
    const start = performance.now()
    // About 100 retries at most over the whole wait, between 20 ms and 30 s apart.
    let delay = clamp(wait / 100, 20, 1000)
    const maxDelay = clamp(wait / 10, delay, 30_000)
    const reported = new Set<string>()
    let lastBlocker: string | undefined

    for (;;) {
      const time = now().toISOString()
      const info: LockInfo = {
        id: randomBytes(16).toString('hex'),
        kind: options.kind,
        host: options.host ?? hostname(),
        pid: options.pid ?? process.pid,
        command: options.command,
        created: time,
        refreshed: time,
        ttl,
      }
      const lock = new RepositoryLock(storage, info, now, options.onLost)
      await lock.write(0, info)
      let blocker: LockInfo | undefined
      try {
        blocker = await findBlocker(
          storage,
          info,
          now(),
          (key, report) => {
            if (reported.has(key)) return
            reported.add(key)
            report()
          },
          options,
        )
      } catch (error) {
        await lock.release().catch(() => {})
        throw error
      }
      if (!blocker) {
        lock.startRefreshing()
        return lock
      }
      await lock.release()
      const waited = performance.now() - start
      if (waited >= wait) throw lockedBy(blocker, wait > 0 ? waited : undefined)
      if (blocker.id !== lastBlocker) {
        lastBlocker = blocker.id
        options.onWait?.(blocker)
      }
      await sleep(Math.min(wait - waited, delay * (0.5 + Math.random())))
      delay = Math.min(delay * 2, maxDelay)
    }
  }

  /** Our objects that may exist; the last one is the current lock. */
  private readonly objects: string[] = []
  private sequence = 0
  private current: LockInfo
  private state: State = { held: true }
  private timer: ReturnType<typeof setInterval> | undefined
  /** Refreshes run one after another; release waits for the one in flight. */
  private queue: Promise<void> = Promise.resolve()

  private constructor(
    private readonly storage: StorageBackend,
    info: LockInfo,
    private readonly now: () => Date,
    private readonly onLost: ((error: LockLostError) => void) | undefined,
  ) {
    this.current = info
  }

  get info(): LockInfo {
    return this.current
  }

  /**
   * Rewrites the lock with a new `refreshed` time as a new object, then removes the previous
   * one (objects are write-once). A timer calls this every ttl/6; callable directly too. A
   * failure loses the lock for good: it throws, and so does every later `assertHeld()`.
   */
  refresh(): Promise<void> {
    const next = this.queue.then(() => this.refreshNow())
    this.queue = next.catch(() => {})
    return next
  }

  /**
   * Stops refreshing and removes the lock. Safe to call twice; a call after a failed removal
   * (storage error, rethrown) tries again.
   */
  async release(): Promise<void> {
    if (this.state.held) this.state = { held: false, reason: 'it was released', lost: false }
    this.stopRefreshing()
    await this.queue
    for (const object of [...this.objects]) {
      await this.storage.delete(object)
      this.forget(object)
    }
  }

  /**
   * Throws a LockLostError when the lock can no longer be relied on: a refresh failed or found
   * it removed, its last refresh is older than ttl/2 (others may soon, by their clocks, treat it
   * as stale), or it was released. Long operations check this before each change they commit.
   */
  assertHeld(): void {
    if (this.state.held) {
      const age = this.now().getTime() - Date.parse(this.current.refreshed)
      if (age <= this.current.ttl / 2) return
      this.lose(
        `it was last refreshed ${formatDuration(age / 1000)} ago, and other hosts may soon treat it as stale (was this machine asleep, or the storage unreachable?)`,
      )
    }
    throw this.lostError()
  }

  private async refreshNow(): Promise<void> {
    if (!this.state.held && !this.state.lost) return // released meanwhile: nothing to refresh
    this.assertHeld()
    const previous = this.objects.at(-1) as string
    const info = { ...this.current, refreshed: this.now().toISOString() }
    const sequence = this.sequence + 1
    try {
      const written = await this.write(sequence, info)
      // Whoever removed our previous object (`kluis unlock`) meant the lock to end: honour it.
      if (!(await this.storage.stat(previous))) {
        this.lose('it was removed from the repository (by `kluis unlock`?)')
        await this.storage.delete(written)
        this.forget(written)
      }
    } catch (error) {
      this.lose('refreshing it failed', error)
      throw this.lostError() ?? error
    }
    if (!this.state.held) {
      // Released meanwhile: the release removes what was just written.
      if (this.state.lost) throw this.lostError()
      return
    }
    this.sequence = sequence
    this.current = info
    // Deleting the older objects is tidying: the new one already holds the lock. What fails to
    // go now goes with the next refresh or the release.
    for (const object of this.objects.slice(0, -1)) {
      try {
        await this.storage.delete(object)
        this.forget(object)
      } catch {}
    }
  }

  /** Why the lock is not held, or undefined while it is. */
  private lostError(): LockLostError | undefined {
    const { state } = this
    if (state.held) return undefined
    const what = `${this.current.kind} lock of ${this.current.command}`
    const cause = state.cause === undefined ? '' : `: ${errorMessage(state.cause)}`
    return new LockLostError(
      `the repository's ${what} is no longer held: ${state.reason}${cause}`,
      state.lost ? 'stopped before changing anything else; run the command again' : undefined,
    )
  }

  private forget(object: string): void {
    const index = this.objects.indexOf(object)
    if (index >= 0) this.objects.splice(index, 1)
  }

  private async write(sequence: number, info: LockInfo): Promise<string> {
    const name = `${LOCKS}${info.id}-${sequence}.json`
    const data = Buffer.from(`${JSON.stringify(info, null, 2)}\n`)
    // Names are random and sequences only grow, so the name is never taken.
    if (!(await this.storage.putIfAbsent(name, data))) {
      throw new StorageError(`cannot write the lock ${name}: an object of that name exists`)
    }
    this.objects.push(name)
    return name
  }

  private lose(reason: string, cause?: unknown): void {
    if (!this.state.held) return
    this.state = { held: false, reason, cause, lost: true }
    this.stopRefreshing()
    this.onLost?.(this.lostError() as LockLostError)
  }

  private startRefreshing(): void {
    // unref: the timer never keeps the process alive; failures are kept for assertHeld().
    this.timer = setInterval(
      () => {
        this.refresh().catch(() => {})
      },
      Math.min(this.current.ttl / 6, MAX_TIMER),
    )
    this.timer.unref()
  }

  private stopRefreshing(): void {
    if (this.timer) clearInterval(this.timer)
    this.timer = undefined
  }
}

/** Every lock in the repository (one entry per lock, however many objects it has left). */
export async function listLocks(
  storage: StorageBackend,
  options: { now?: () => Date; onMalformed?: (lock: MalformedLock) => void } = {},
): Promise<ListedLock[]> {
  const now = (options.now ?? (() => new Date()))().getTime()
  const { locks, malformed } = await readLocks(storage)
  for (const lock of malformed) options.onMalformed?.(lock)
  return locks
    .map(({ info }) => ({ ...info, stale: isStale(info, now) }))
    .sort((a, b) => a.created.localeCompare(b.created))
}

/**
 * For `kluis unlock`: removes stale locks, or with `staleOnly: false` every lock (for an
 * operator who knows that no kluis is running). Malformed lock objects are removed either way:
 * nobody honours them. Returns the locks removed.
 */
export async function removeLocks(
  storage: StorageBackend,
  options: { staleOnly: boolean; now?: () => Date; onMalformed?: (lock: MalformedLock) => void },
): Promise<LockInfo[]> {
  const now = (options.now ?? (() => new Date()))().getTime()
  const { locks, malformed } = await readLocks(storage)
  const removed: LockInfo[] = []
  for (const { info, objects } of locks) {
    if (options.staleOnly && !isStale(info, now)) continue
    for (const object of objects) await storage.delete(object)
    removed.push(info)
  }
  for (const lock of malformed) {
    await storage.delete(lock.object)
    options.onMalformed?.(lock)
  }
  return removed
}

export function isStale(info: LockInfo, now: number): boolean {
  return now > Date.parse(info.refreshed) + info.ttl
}

/** The first live lock other than `own` that conflicts with it, if any. */
async function findBlocker(
  storage: StorageBackend,
  own: LockInfo,
  now: Date,
  once: (key: string, report: () => void) => void,
  options: LockOptions,
): Promise<LockInfo | undefined> {
  const { locks, malformed } = await readLocks(storage)
  for (const lock of malformed) once(lock.object, () => options.onMalformed?.(lock))
  let blocker: LockInfo | undefined
  for (const { info } of locks) {
    if (info.id === own.id) continue
    // Any stale lock is worth a word, even one that would not conflict: a process died.
    if (isStale(info, now.getTime())) {
      once(info.id, () => options.onStale?.(info))
      continue
    }
    if (own.kind === 'shared' && info.kind === 'shared') continue
    // The exclusive holder is the one worth naming (a prune, rather than one of many backups).
    if (!blocker || (info.kind === 'exclusive' && blocker.kind !== 'exclusive')) blocker = info
  }
  return blocker
}

interface StoredLock {
  /** From the newest object. */
  info: LockInfo
  objects: string[]
}

async function readLocks(
  storage: StorageBackend,
): Promise<{ locks: StoredLock[]; malformed: MalformedLock[] }> {
  const listed: Array<{ name: string; size: number }> = []
  for await (const object of storage.list(LOCKS)) listed.push(object)
  type Read = { name: string; info: LockInfo } | { name: string; problem: string } | undefined
  const read = mapOrdered(listed, storage.concurrency, async ({ name, size }): Promise<Read> => {
    const id = OBJECT_NAME.exec(name)?.[1]
    if (!id) return { name, problem: 'not a lock object name' }
    if (size > MAX_LOCK_SIZE) return { name, problem: `too large for a lock (${size} bytes)` }
    let data: Buffer
    try {
      data = await storage.get(name)
    } catch (error) {
      // Released or refreshed between the listing and now: it is gone, not malformed.
      if (error instanceof ObjectNotFoundError) return undefined
      throw error
    }
    const parsed = parseLock(id, data)
    return typeof parsed === 'string' ? { name, problem: parsed } : { name, info: parsed }
  })
  const byId = new Map<string, StoredLock>()
  const malformed: MalformedLock[] = []
  for await (const result of read) {
    if (!result) continue
    if ('problem' in result) {
      malformed.push({ object: result.name, reason: result.problem })
      continue
    }
    const { info } = result
    const known = byId.get(info.id)
    if (!known) byId.set(info.id, { info, objects: [result.name] })
    else {
      known.objects.push(result.name)
      if (Date.parse(info.refreshed) > Date.parse(known.info.refreshed)) known.info = info
    }
  }
  return { locks: [...byId.values()], malformed }
}

/**
 * A lock that cannot be read is passed over (and reported), not honoured: it has no time we
 * could trust, so honouring it would block every scheduled run until someone notices and runs
 * `kluis unlock` — the failure users of restic and borg complain of. Honouring it would buy no
 * safety: kluis writes objects atomically, so it never leaves a half-written lock, and whoever
 * can plant a bad lock can as well delete the good ones. A lock of a kind this version does not
 * know (a newer kluis) is well-formed and expires: it is honoured as exclusive.
 */
function parseLock(id: string, data: Buffer): LockInfo | string {
  let value: unknown
  try {
    value = JSON.parse(data.toString('utf8'))
  } catch {
    return data.length === 0 ? 'empty' : 'not JSON'
  }
  if (typeof value !== 'object' || value === null) return 'not a JSON object'
  const lock = value as Record<string, unknown>
  if (lock.id !== id) return 'its id does not match its name'
  const { kind, host, pid, command, created, refreshed, ttl } = lock
  if (typeof kind !== 'string') return 'no kind'
  if (typeof host !== 'string' || typeof command !== 'string') return 'no host or command'
  if (typeof pid !== 'number' || !Number.isSafeInteger(pid)) return 'no pid'
  if (typeof created !== 'string' || Number.isNaN(Date.parse(created))) return 'no created time'
  if (typeof refreshed !== 'string' || Number.isNaN(Date.parse(refreshed))) {
    return 'no refreshed time'
  }
  if (typeof ttl !== 'number' || !Number.isFinite(ttl) || ttl <= 0) return 'no ttl'
  return {
    id,
    kind: kind === 'shared' ? 'shared' : 'exclusive',
    host: printable(host),
    pid,
    command: printable(command),
    created: new Date(Date.parse(created)).toISOString(),
    refreshed: new Date(Date.parse(refreshed)).toISOString(),
    ttl,
  }
}

function lockedBy(blocker: LockInfo, waited: number | undefined): RefusedError {
  const stale = new Date(Date.parse(blocker.refreshed) + blocker.ttl).toISOString()
  const after = waited === undefined ? '' : ` (waited ${formatDuration(waited / 1000)})`
  return new RefusedError(
    `repository is locked by ${blocker.command} on host ${blocker.host} (pid ${blocker.pid}) since ${formatTime(blocker.created)} UTC${after}`,
    `it becomes stale at ${formatTime(stale)} UTC if that process died, and is ignored from then on; \`kluis unlock --stale-only\` removes stale locks`,
  )
}

/** Lock text is untrusted: no control or format characters in messages, and not too long. */
function printable(text: string): string {
  const clean = text.replace(/[\p{Cc}\p{Cf}]/gu, '?')
  return clean.length > MAX_TEXT ? `${clean.slice(0, MAX_TEXT)}…` : clean
}

function clamp(value: number, min: number, max: number): number {
  return Math.min(Math.max(value, min), max)
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}
