/**
 * Which snapshots to keep: restic's `forget` semantics as a pure function (no clock, no I/O).
 * Each bucket rule walks the snapshots newest first and keeps the newest one of every hour, day,
 * ISO week, month or year until it has kept N; buckets without a snapshot do not use up a slot.
 */
import { ConfigError, IntegrityError } from '../core/errors.js'
import { parseTimestamp } from '../core/time.js'
import { bucketKey, type CalendarUnit, checkTimeZone, localTime } from './calendar.js'

export interface RetentionPolicy {
  keepLast?: number
  keepHourly?: number
  keepDaily?: number
  keepWeekly?: number
  keepMonthly?: number
  keepYearly?: number
  /**
   * Keep every snapshot within this duration before the newest snapshot (as restic does), or
   * before `now` when the newest snapshot lies in the future. Milliseconds, or a duration text
   * ("1y6m") whose years and months follow the UTC calendar, like restic's --keep-within.
   */
  keepWithin?: number | string
  /** IANA time zone for the calendar buckets (hour/day/week/month/year); default 'UTC'. */
  timezone?: string
}

export interface RetentionCandidate {
  id: string
  /** ISO 8601 */
  time: string
}

export interface RetentionDecision {
  id: string
  time: string
  keep: boolean
  /** Why it is kept, e.g. "daily snapshot 12 of 30"; empty when it is removed. */
  reasons: string[]
}

const countRules = [
  { field: 'keepLast', label: 'last', unit: undefined },
  { field: 'keepHourly', label: 'hourly', unit: 'hour' },
  { field: 'keepDaily', label: 'daily', unit: 'day' },
  { field: 'keepWeekly', label: 'weekly', unit: 'week' },
  { field: 'keepMonthly', label: 'monthly', unit: 'month' },
  { field: 'keepYearly', label: 'yearly', unit: 'year' },
] as const satisfies { field: keyof RetentionPolicy; label: string; unit?: CalendarUnit }[]

/** True when the policy keeps nothing at all (every rule unset or 0): prune must refuse it. */
export function isEmptyPolicy(policy: RetentionPolicy): boolean {
  return countRules.every(({ field }) => !policy[field]) && !policy.keepWithin
}

/**
 * Decisions for every candidate, newest first (equal times: id descending). An empty policy keeps
 * everything, as restic does, so that a missing `retention:` can never remove a snapshot.
 */
export function applyRetention(
  candidates: RetentionCandidate[],
  policy: RetentionPolicy,
  now: Date,
): RetentionDecision[] {
  if (Number.isNaN(now.getTime())) throw new TypeError('applyRetention: now is an invalid Date')
  const timeZone = policy.timezone ?? 'UTC'
  checkTimeZone(timeZone)
  checkPolicy(policy)

  const snapshots = candidates
    .map((candidate) => {
      const epochMs = epochOf(candidate)
      return { ...candidate, epochMs, local: localTime(epochMs, timeZone), reasons: [] as string[] }
    })
    .sort((a, b) => b.epochMs - a.epochMs || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0))
  if (isEmptyPolicy(policy)) {
    for (const snapshot of snapshots) snapshot.reasons.push('no retention rule set')
  }

  for (const { field, label, unit } of countRules) {
    const wanted = policy[field] ?? 0
    let kept = 0
    let lastKeptBucket: string | undefined
    for (const [index, snapshot] of snapshots.entries()) {
      if (kept >= wanted) break
      // keep-last puts every snapshot in a bucket of its own
      const bucket = unit ? bucketKey(snapshot.local, unit) : String(index)
      if (bucket === lastKeptBucket) continue
      lastKeptBucket = bucket
      kept++
      snapshot.reasons.push(`${label} snapshot ${kept} of ${wanted}`)
    }
  }

  const newest = snapshots[0]?.epochMs
  if (policy.keepWithin && newest !== undefined) {
    // Anchored at the newest snapshot (restic), so backups that stopped never let keep-within
    // remove everything; capped at now, so a snapshot dated in the future cannot shift the window.
    const anchor = Math.min(newest, now.getTime())
    const cutoff = withinCutoff(anchor, policy.keepWithin)
    const span =
      typeof policy.keepWithin === 'string' ? policy.keepWithin.trim() : formatMs(policy.keepWithin)
    const reason = `within ${span} of ${anchor === newest ? 'the newest snapshot' : 'now'}`
    for (const snapshot of snapshots) if (snapshot.epochMs >= cutoff) snapshot.reasons.push(reason)
  }

  return snapshots.map(({ id, time, reasons }) => ({ id, time, keep: reasons.length > 0, reasons }))
}

function checkPolicy(policy: RetentionPolicy): void {
  for (const { field } of countRules) {
    const count = policy[field]
    if (count !== undefined && !(Number.isSafeInteger(count) && count >= 0)) {
      throw new ConfigError(
        `retention ${kebab(field)} must be a whole number of 0 or more, not ${count}`,
      )
    }
  }
  const within = policy.keepWithin
  if (typeof within === 'string' && within !== '') parseDurationParts(within)
  if (typeof within === 'number' && !(Number.isFinite(within) && within >= 0)) {
    throw new ConfigError(`retention keep-within must be a duration such as "30d", not ${within}`)
  }
}

function epochOf({ id, time }: RetentionCandidate): number {
  const date = parseTimestamp(time)
  if (!date) throw new IntegrityError(`snapshot ${id}`, `time "${time}" is not an ISO 8601 time`)
  return date.getTime()
}

const kebab = (field: string) => field.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`)

// ——— durations ———

interface DurationParts {
  years: number
  months: number
  weeks: number
  days: number
  hours: number
}

const HOUR = 3_600_000
const DAY = 24 * HOUR

// As in restic, "m" is months: there are no minutes, a backup schedule is counted in hours.
const units: Record<string, keyof DurationParts> = {
  y: 'years',
  year: 'years',
  years: 'years',
  m: 'months',
  month: 'months',
  months: 'months',
  w: 'weeks',
  week: 'weeks',
  weeks: 'weeks',
  d: 'days',
  day: 'days',
  days: 'days',
  h: 'hours',
  hour: 'hours',
  hours: 'hours',
}

function parseDurationParts(text: string): DurationParts {
  const invalid = (problem: string) =>
    new ConfigError(
      `invalid duration "${text}": ${problem}`,
      'write whole numbers with units y (years), m (months, as in restic), w (weeks), d (days), ' +
        'h (hours), e.g. "24h", "30d", "1y6m" or "30 days"',
    )
  const normalized = text.trim().toLowerCase()
  if (normalized === '') throw invalid('it is empty')
  if (normalized.startsWith('-')) throw invalid('it cannot be negative')
  if (!/^(\d+\s*[a-z]+\s*)+$/.test(normalized)) throw invalid('expected a number and a unit')
  const parts: DurationParts = { years: 0, months: 0, weeks: 0, days: 0, hours: 0 }
  for (const [, amount = '', unit = ''] of normalized.matchAll(/(\d+)\s*([a-z]+)/g)) {
    const part = units[unit]
    if (!part) throw invalid(`unknown unit "${unit}"`)
    parts[part] += Number(amount)
  }
  const total = Object.values(parts).reduce((sum, value) => sum + value, 0)
  if (!Number.isSafeInteger(total)) throw invalid('it is too long')
  if (total === 0) throw invalid('it must be longer than zero')
  return parts
}

/**
 * "24h", "30d", "2w", "1y6m", "30 days" → milliseconds, for fixed spans such as an RPO or a key's
 * maximum age. Here a month counts as 30 days and a year as 365; keep-within given as text follows
 * the calendar instead. Throws a ConfigError with a hint on anything else.
 */
export function parseDuration(text: string): number {
  const { years, months, weeks, days, hours } = parseDurationParts(text)
  return (years * 365 + months * 30 + weeks * 7 + days) * DAY + hours * HOUR
}

/** The earliest time within the span before the anchor; years and months by the UTC calendar. */
function withinCutoff(anchorMs: number, within: number | string): number {
  if (typeof within === 'number') return anchorMs - within
  const { years, months, weeks, days, hours } = parseDurationParts(within)
  const date = new Date(anchorMs)
  // Like Go's AddDate, which restic uses: 31 March minus one month is 3 March (or 2 in a leap year).
  date.setUTCFullYear(
    date.getUTCFullYear() - years,
    date.getUTCMonth() - months,
    date.getUTCDate() - weeks * 7 - days,
  )
  date.setUTCHours(date.getUTCHours() - hours)
  // A span reaching past the earliest Date there is covers every snapshot.
  return Number.isNaN(date.getTime()) ? Number.NEGATIVE_INFINITY : date.getTime()
}

/** 7 days → "7d", 36 hours → "1d12h", for reasons when keep-within is given in milliseconds. */
function formatMs(ms: number): string {
  const days = Math.floor(ms / DAY)
  const hours = Number(((ms - days * DAY) / HOUR).toFixed(2))
  return `${days ? `${days}d` : ''}${hours || !days ? `${hours}h` : ''}`
}
