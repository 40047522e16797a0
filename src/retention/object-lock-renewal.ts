import { errorMessage } from '../core/errors.js'
import type { Reporter } from '../core/reporter.js'
import type { Repository } from '../repository/repository.js'

const DAY_MS = 24 * 60 * 60 * 1000
/** One object per finished renewal round, named by its time. */
const RENEWALS = 'object-lock/renewed-'
/** Objects that come and go (locks, probes) and the renewal records: none needs a renewal. */
const NOT_RENEWED = ['locks/', 'probes/', 'object-lock/']
/** A round stops after this many refusals: with a missing permission, every object fails. */
const MAX_FAILURES = 10

/**
 * Object lock keeps an object for storage.object-lock days from its write. Chunks are
 * deduplicated, so a chunk written 400 days ago can still be part of today's snapshot while
 * its lock has run out. Prune therefore renews the locks in rounds: once half the period has
 * passed since the last round (or since the repository was created), every object the
 * repository holds after pruning is locked for a full period from now, and the round is
 * recorded. Between rounds every object stays locked for at least half a period: those written
 * since the last round carry their own, later, lock. `force` runs a round now (object lock was
 * configured for a repository that already held objects written without one).
 */
export async function renewObjectLocks(
  repository: Repository,
  now: Date,
  reporter: Reporter,
  options: { force: boolean } = { force: false },
): Promise<{ renewed: number; until: Date } | undefined> {
  const storage = repository.storage
  const days = storage.objectLockDays
  if (!days || !storage.extendObjectLock) {
    if (options.force) reporter.warn('no object lock to renew: storage.object-lock is not set')
    return undefined
  }
  const last = await lastRenewal(repository)
  const due = now.getTime() - last.getTime() >= (days / 2) * DAY_MS
  if (!due && !options.force) return undefined

  const until = new Date(now.getTime() + days * DAY_MS)
  const names: string[] = []
  for await (const object of storage.list('')) {
    if (!NOT_RENEWED.some((prefix) => object.name.startsWith(prefix))) names.push(object.name)
  }
  const failures: Array<{ name: string; error: unknown }> = []
  let next = 0
  const worker = async () => {
    while (next < names.length && failures.length < MAX_FAILURES) {
      const name = names[next++] as string
      await storage.extendObjectLock?.(name, until).catch((error: unknown) => {
        failures.push({ name, error })
      })
    }
  }
  await Promise.all(Array.from({ length: Math.max(1, storage.concurrency) }, worker))
  if (failures.length > 0) {
    const [first] = failures
    reporter.warn(
      `could not extend the object lock of ${failures.length < MAX_FAILURES ? '' : 'at least '}${failures.length} of ${names.length} object(s), first ${first?.name}: ${errorMessage(first?.error)}; ` +
        `objects written before ${last.toISOString().slice(0, 10)} may lose their lock. The next prune tries again (the credentials need s3:PutObjectRetention, or the SAS the i permission)`,
    )
    return undefined
  }
  await storage.putIfAbsent(
    `${RENEWALS}${now.toISOString()}`,
    Buffer.from(`${until.toISOString()}\n`),
  )
  reporter.info(
    `extended the object lock of ${names.length} object(s) to ${until.toISOString().slice(0, 10)}`,
  )
  return { renewed: names.length, until }
}

/**
 * When object locks are due to be renewed but were not (prune did not run, or could not extend
 * them): a warning for check, with the date the oldest locks may run out.
 */
export async function objectLockRenewalWarning(
  repository: Repository,
  now: Date,
): Promise<string | undefined> {
  const days = repository.storage.objectLockDays
  if (!days) return undefined
  const last = await lastRenewal(repository)
  if (now.getTime() - last.getTime() < (days / 2) * DAY_MS + DAY_MS) return undefined
  const expiry = new Date(last.getTime() + days * DAY_MS).toISOString().slice(0, 10)
  return `the object lock of objects written before ${last.toISOString().slice(0, 10)} has not been renewed and may run out on ${expiry}: run kluis prune, which renews it`
}

/** The last renewal round, or the repository's creation when there was none. */
async function lastRenewal(repository: Repository): Promise<Date> {
  const created = new Date(repository.config.created)
  let last = Number.isNaN(created.getTime()) ? new Date(0) : created
  for await (const object of repository.storage.list(RENEWALS)) {
    const time = new Date(object.name.slice(RENEWALS.length))
    if (!Number.isNaN(time.getTime()) && time > last) last = time
  }
  return last
}
