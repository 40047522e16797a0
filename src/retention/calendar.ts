import { ConfigError } from '../core/errors.js'

/** The wall-clock reading of an instant in one time zone. */
export interface LocalTime {
  year: number
  month: number
  day: number
  hour: number
  /** Minutes ahead of UTC at that instant; tells apart the two 02:30s of a DST fall-back night. */
  offsetMinutes: number
}

export type CalendarUnit = 'hour' | 'day' | 'week' | 'month' | 'year'

const formatters = new Map<string, Intl.DateTimeFormat>()

/** A formatter for the zone; a ConfigError naming the zone when Intl does not know it. */
function formatterFor(timeZone: string): Intl.DateTimeFormat {
  let formatter = formatters.get(timeZone)
  if (!formatter) {
    try {
      formatter = new Intl.DateTimeFormat('en-US', {
        timeZone,
        hourCycle: 'h23',
        year: 'numeric',
        month: 'numeric',
        day: 'numeric',
        hour: 'numeric',
        minute: 'numeric',
        second: 'numeric',
      })
    } catch {
      throw new ConfigError(
        `unknown time zone "${timeZone}"`,
        'use an IANA time zone name such as "UTC" or "Europe/Amsterdam"',
      )
    }
    formatters.set(timeZone, formatter)
  }
  return formatter
}

/** Throws a ConfigError when the time zone is unknown. */
export function checkTimeZone(timeZone: string): void {
  formatterFor(timeZone)
}

export function localTime(epochMs: number, timeZone: string): LocalTime {
  const fields: Record<string, number> = {}
  for (const part of formatterFor(timeZone).formatToParts(epochMs)) {
    if (part.type !== 'literal') fields[part.type] = Number(part.value)
  }
  const { year = 0, month = 1, day = 1, hour = 0, minute = 0, second = 0 } = fields
  // The zone's offset is how far its wall clock runs ahead of UTC (the formatter drops milliseconds).
  const wallClockAsUtc = Date.UTC(year, month - 1, day, hour, minute, second)
  const offsetMinutes = Math.round((wallClockAsUtc - Math.floor(epochMs / 1000) * 1000) / 60_000)
  return { year, month, day, hour, offsetMinutes }
}

/** ISO 8601 week: weeks start on Monday, week 1 holds the year's first Thursday. */
export function isoWeek(year: number, month: number, day: number): { year: number; week: number } {
  const date = new Date(Date.UTC(year, month - 1, day))
  const weekday = date.getUTCDay() || 7 // Monday 1 … Sunday 7
  date.setUTCDate(date.getUTCDate() + 4 - weekday) // the Thursday of this week decides its year
  const weekYear = date.getUTCFullYear()
  const dayOfYear = (date.getTime() - Date.UTC(weekYear, 0, 1)) / 86_400_000
  return { year: weekYear, week: Math.floor(dayOfYear / 7) + 1 }
}

const pad = (value: number) => String(value).padStart(2, '0')

/** A key that is equal for two instants exactly when they fall in the same calendar unit. */
export function bucketKey(time: LocalTime, unit: CalendarUnit): string {
  const date = `${time.year}-${pad(time.month)}-${pad(time.day)}`
  switch (unit) {
    case 'hour':
      return `${date}T${pad(time.hour)} ${time.offsetMinutes}`
    case 'day':
      return date
    case 'week': {
      const { year, week } = isoWeek(time.year, time.month, time.day)
      return `${year}-W${pad(week)}`
    }
    case 'month':
      return `${time.year}-${pad(time.month)}`
    case 'year':
      return String(time.year)
  }
}
