import { describe, expect, it } from 'vitest'
import { ConfigError } from '../src/core/errors.js'
import {
  applyRetention,
  isEmptyPolicy,
  parseDuration,
  type RetentionCandidate,
  type RetentionDecision,
  type RetentionPolicy,
} from '../src/retention/policy.js'

const HOUR = 3_600_000
const DAY = 24 * HOUR
const now = new Date('2026-11-25T23:59:59Z')

/** Snapshots named after their times, so that test expectations read as times. */
const snapshots = (...times: string[]): RetentionCandidate[] =>
  times.map((time) => ({ id: time, time }))

/** id → reasons of the kept snapshots. */
function kept(decisions: RetentionDecision[]): Record<string, string[]> {
  return Object.fromEntries(decisions.filter((d) => d.keep).map((d) => [d.id, d.reasons]))
}

/** mulberry32: a small seeded generator, so the golden data is the same on every run. */
function seededRandom(seed: number): () => number {
  let state = seed
  return () => {
    state = (state + 0x6d2b79f5) | 0
    let t = Math.imul(state ^ (state >>> 15), 1 | state)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296
  }
}

describe('retention: 400 days under keep-daily 30, keep-monthly 12 (golden)', () => {
  const random = seededRandom(20261125)
  const candidates: RetentionCandidate[] = []
  const lastDay = Date.UTC(2026, 10, 25)
  for (let day = 0; day < 400; day++) {
    const date = new Date(lastDay - day * DAY).toISOString().slice(0, 10)
    const roll = random()
    // the newest day always has two snapshots: the hand-picked checks below rely on it
    const count = day === 0 ? 2 : roll < 0.15 ? 0 : roll < 0.75 ? 1 : roll < 0.92 ? 2 : 3
    const hours = [...Array(24).keys()].sort(() => random() - 0.5).slice(0, count)
    for (const hour of hours) {
      const time = `${date}T${String(hour).padStart(2, '0')}:17:00Z`
      candidates.push({ id: `snap-${date}-${hour}`, time })
    }
  }
  // stored order must not matter
  candidates.sort(() => random() - 0.5)

  /** The simplest independent reading of the rule: newest per group, the `count` newest groups. */
  function newestPerGroup(groupOf: (time: string) => string, count: number) {
    const newest = new Map<string, RetentionCandidate>()
    for (const candidate of candidates) {
      const group = groupOf(candidate.time)
      const current = newest.get(group)
      if (!current || candidate.time > current.time) newest.set(group, candidate)
    }
    const groups = [...newest.keys()].sort().reverse().slice(0, count)
    // snapshot id → its rank among the kept groups (1 = newest)
    return new Map(groups.map((group, index) => [newest.get(group)?.id ?? '', index + 1]))
  }
  const daily = newestPerGroup((time) => time.slice(0, 10), 30)
  const monthly = newestPerGroup((time) => time.slice(0, 7), 12)

  const decisions = applyRetention(candidates, { keepDaily: 30, keepMonthly: 12 }, now)

  it('the data has gaps and days with several snapshots', () => {
    const days = new Set(candidates.map((c) => c.time.slice(0, 10)))
    expect(days.size).toBeLessThan(380)
    expect(candidates.length).toBeGreaterThan(days.size + 60)
    expect(new Set(candidates.map((c) => c.time.slice(0, 7))).size).toBeGreaterThan(12)
  })

  it('keeps exactly the newest snapshot of the 30 newest days and of the 12 newest months', () => {
    const expected = new Set([...daily.keys(), ...monthly.keys()])
    expect(new Set(decisions.filter((d) => d.keep).map((d) => d.id))).toEqual(expected)
    expect(decisions).toHaveLength(candidates.length)
  })

  it('gives every snapshot the reasons of every rule that keeps it, and none to the removed', () => {
    for (const decision of decisions) {
      const reasons: string[] = []
      const day = daily.get(decision.id)
      const month = monthly.get(decision.id)
      if (day) reasons.push(`daily snapshot ${day} of 30`)
      if (month) reasons.push(`monthly snapshot ${month} of 12`)
      expect(decision.reasons, decision.id).toEqual(reasons)
    }
  })

  it('hand-picked snapshots', () => {
    const byId = new Map(decisions.map((d) => [d.id, d]))
    const [newest, second] = decisions
    expect(newest?.time.slice(0, 10)).toBe('2026-11-25')
    expect(newest?.reasons).toEqual(['daily snapshot 1 of 30', 'monthly snapshot 1 of 12'])
    // the earlier snapshot of the same day is not the newest of its day or month
    expect(second?.time.slice(0, 10)).toBe('2026-11-25')
    expect(second).toMatchObject({ keep: false, reasons: [] })
    const oldestMonthly = [...monthly].find(([, rank]) => rank === 12)?.[0] ?? ''
    expect(byId.get(oldestMonthly)?.time.slice(0, 7)).toBe('2025-12')
    expect(byId.get(oldestMonthly)?.reasons).toEqual(['monthly snapshot 12 of 12'])
    const oldestDaily = [...daily].find(([, rank]) => rank === 30)?.[0] ?? ''
    expect(byId.get(oldestDaily)?.reasons).toContain('daily snapshot 30 of 30')
  })

  it('lists the decisions newest first', () => {
    const times = decisions.map((d) => d.time)
    expect(times).toEqual([...times].sort().reverse())
  })
})

describe('retention rules', () => {
  it('keep-last and keep-daily overlap: one snapshot can carry both reasons', () => {
    const decisions = applyRetention(
      snapshots('2026-11-23T09:00:00Z', '2026-11-24T08:00:00Z', '2026-11-24T20:00:00Z'),
      { keepLast: 2, keepDaily: 2 },
      now,
    )
    expect(decisions.map((d) => [d.id, d.reasons])).toEqual([
      ['2026-11-24T20:00:00Z', ['last snapshot 1 of 2', 'daily snapshot 1 of 2']],
      ['2026-11-24T08:00:00Z', ['last snapshot 2 of 2']],
      ['2026-11-23T09:00:00Z', ['daily snapshot 2 of 2']],
    ])
  })

  it('keep-hourly keeps the newest of each hour; an hour without a snapshot takes no slot', () => {
    const decisions = applyRetention(
      snapshots(
        '2026-11-25T10:05:00Z',
        '2026-11-25T10:50:00Z',
        '2026-11-25T11:10:00Z',
        '2026-11-25T13:00:00Z',
        '2026-11-25T14:30:00Z',
      ),
      { keepHourly: 3 },
      now,
    )
    expect(kept(decisions)).toEqual({
      '2026-11-25T14:30:00Z': ['hourly snapshot 1 of 3'],
      '2026-11-25T13:00:00Z': ['hourly snapshot 2 of 3'],
      '2026-11-25T11:10:00Z': ['hourly snapshot 3 of 3'],
    })
  })

  it('keep-weekly uses ISO weeks across a year boundary (2026-W53 runs to Sunday 3 January 2027)', () => {
    const decisions = applyRetention(
      snapshots(
        '2026-12-27T12:00:00Z', // Sunday, 2026-W52
        '2026-12-28T12:00:00Z', // Monday, 2026-W53
        '2027-01-03T12:00:00Z', // Sunday, still 2026-W53
        '2027-01-04T12:00:00Z', // Monday, 2027-W01
      ),
      { keepWeekly: 3 },
      now,
    )
    expect(kept(decisions)).toEqual({
      '2027-01-04T12:00:00Z': ['weekly snapshot 1 of 3'],
      '2027-01-03T12:00:00Z': ['weekly snapshot 2 of 3'],
      '2026-12-27T12:00:00Z': ['weekly snapshot 3 of 3'],
    })
  })

  it('keep-weekly: 1 January 2027 (Friday) is in 2026-W53, 31 December 2024 (Tuesday) in 2025-W01', () => {
    const decisions = applyRetention(
      snapshots(
        '2026-12-31T00:00:00Z',
        '2027-01-01T00:00:00Z',
        '2024-12-30T00:00:00Z',
        '2024-12-31T00:00:00Z',
        '2025-01-05T00:00:00Z',
      ),
      { keepWeekly: 10 },
      now,
    )
    expect(Object.keys(kept(decisions))).toEqual(['2027-01-01T00:00:00Z', '2025-01-05T00:00:00Z'])
  })

  it('keep-monthly and keep-yearly keep the newest of each month and year', () => {
    const decisions = applyRetention(
      snapshots(
        '2024-06-01T00:00:00Z',
        '2024-12-31T23:00:00Z',
        '2025-03-01T00:00:00Z',
        '2025-11-30T00:00:00Z',
        '2026-01-15T00:00:00Z',
        '2026-02-01T00:00:00Z',
      ),
      { keepMonthly: 2, keepYearly: 2 },
      now,
    )
    expect(kept(decisions)).toEqual({
      '2026-02-01T00:00:00Z': ['monthly snapshot 1 of 2', 'yearly snapshot 1 of 2'],
      '2026-01-15T00:00:00Z': ['monthly snapshot 2 of 2'],
      '2025-11-30T00:00:00Z': ['yearly snapshot 2 of 2'],
    })
  })

  it('a day with no snapshot does not use up a daily slot', () => {
    // 40 days, every fourth one missing: 30 days with a snapshot, spread over 40 calendar days
    const times: string[] = []
    for (let day = 0; day < 40; day++) {
      if (day % 4 !== 1) times.push(new Date(Date.UTC(2026, 10, 25, 6) - day * DAY).toISOString())
    }
    expect(times).toHaveLength(30)
    const decisions = applyRetention(snapshots(...times), { keepDaily: 30 }, now)
    expect(decisions.every((d) => d.keep)).toBe(true)
    expect(decisions.at(-1)).toMatchObject({
      time: '2026-10-17T06:00:00.000Z',
      reasons: ['daily snapshot 30 of 30'],
    })
  })

  it('keeps fewer than N when there are fewer buckets', () => {
    const decisions = applyRetention(snapshots('2026-11-25T01:00:00Z'), { keepDaily: 30 }, now)
    expect(decisions[0]?.reasons).toEqual(['daily snapshot 1 of 30'])
  })

  it('equal times are ordered by id, descending, and keep-last takes the first', () => {
    const time = '2026-11-25T10:00:00Z'
    const decisions = applyRetention(
      [
        { id: 'a', time },
        { id: 'c', time },
        { id: 'b', time },
      ],
      { keepLast: 1 },
      now,
    )
    expect(decisions.map((d) => [d.id, d.keep])).toEqual([
      ['c', true],
      ['b', false],
      ['a', false],
    ])
  })

  it('an empty policy keeps everything; prune refuses it before it gets here', () => {
    const decisions = applyRetention(snapshots('2026-11-25T01:00:00Z'), {}, now)
    expect(decisions[0]).toMatchObject({ keep: true, reasons: ['no retention rule set'] })
    expect(applyRetention([], { keepDaily: 3 }, now)).toEqual([])
  })

  it('rejects counts that are not whole numbers and times that are not ISO 8601', () => {
    expect(() => applyRetention([], { keepDaily: -1 }, now)).toThrow(/keep-daily must be a whole/)
    expect(() => applyRetention([], { keepMonthly: 1.5 }, now)).toThrow(ConfigError)
    expect(() => applyRetention(snapshots('yesterday'), { keepLast: 1 }, now)).toThrow(
      /snapshot yesterday: time "yesterday" is not an ISO 8601 time/,
    )
  })
})

describe('keep-within', () => {
  const times = snapshots(
    '2026-11-25T10:00:00Z',
    '2026-11-18T10:00:00Z', // exactly 7 days before the newest: kept
    '2026-11-18T09:59:59Z',
    '2026-11-01T00:00:00Z',
  )

  it('keeps every snapshot within the span of the newest snapshot', () => {
    const decisions = applyRetention(times, { keepWithin: '7d' }, now)
    expect(kept(decisions)).toEqual({
      '2026-11-25T10:00:00Z': ['within 7d of the newest snapshot'],
      '2026-11-18T10:00:00Z': ['within 7d of the newest snapshot'],
    })
  })

  it('accepts milliseconds and names the span in days and hours', () => {
    const decisions = applyRetention(times, { keepWithin: 7 * DAY + 12 * HOUR }, now)
    expect(kept(decisions)['2026-11-18T09:59:59Z']).toEqual(['within 7d12h of the newest snapshot'])
    expect(kept(decisions)['2026-11-01T00:00:00Z']).toBeUndefined()
  })

  it('still keeps the newest snapshots when backups stopped long ago', () => {
    const decisions = applyRetention(times, { keepWithin: '7d' }, new Date('2027-06-01T00:00:00Z'))
    expect(Object.keys(kept(decisions))).toEqual(['2026-11-25T10:00:00Z', '2026-11-18T10:00:00Z'])
  })

  it('counts from now when a snapshot is dated in the future', () => {
    const decisions = applyRetention(
      snapshots('2027-01-01T00:00:00Z', '2026-11-20T00:00:00Z', '2026-11-10T00:00:00Z'),
      { keepWithin: '7d' },
      new Date('2026-11-25T00:00:00Z'),
    )
    expect(kept(decisions)).toEqual({
      '2027-01-01T00:00:00Z': ['within 7d of now'],
      '2026-11-20T00:00:00Z': ['within 7d of now'],
    })
  })

  it('counts years and months by the calendar, like restic', () => {
    const decisions = applyRetention(
      snapshots('2026-07-15T12:00:00Z', '2025-01-15T12:00:00Z', '2025-01-15T11:00:00Z'),
      { keepWithin: '1y6m' },
      now,
    )
    expect(Object.keys(kept(decisions))).toEqual(['2026-07-15T12:00:00Z', '2025-01-15T12:00:00Z'])
  })

  it('adds its reason to those of the other rules', () => {
    const decisions = applyRetention(times, { keepLast: 1, keepWithin: '1d' }, now)
    expect(decisions[0]?.reasons).toEqual([
      'last snapshot 1 of 1',
      'within 1d of the newest snapshot',
    ])
  })
})

describe('retention time zones', () => {
  const lateSaturdayUtc = snapshots('2026-03-28T23:30:00Z', '2026-03-29T00:30:00Z')

  it('two UTC days can be one day in Europe/Amsterdam (00:30 and 01:30 CET on 29 March)', () => {
    const utc = applyRetention(lateSaturdayUtc, { keepDaily: 5 }, now)
    expect(utc.filter((d) => d.keep)).toHaveLength(2)
    const amsterdam = applyRetention(
      lateSaturdayUtc,
      { keepDaily: 5, timezone: 'Europe/Amsterdam' },
      now,
    )
    expect(kept(amsterdam)).toEqual({ '2026-03-29T00:30:00Z': ['daily snapshot 1 of 5'] })
  })

  it('the 23-hour day when summer time starts in Europe/Amsterdam', () => {
    const times = snapshots(
      '2026-03-29T00:30:00Z', // 01:30 CET, 29 March
      '2026-03-29T01:30:00Z', // 03:30 CEST, 29 March (02:00 CET became 03:00 CEST)
      '2026-03-29T21:30:00Z', // 23:30 CEST, 29 March
      '2026-03-29T22:30:00Z', // 00:30 CEST, 30 March
    )
    const amsterdam = applyRetention(times, { keepDaily: 5, timezone: 'Europe/Amsterdam' }, now)
    expect(kept(amsterdam)).toEqual({
      '2026-03-29T22:30:00Z': ['daily snapshot 1 of 5'],
      '2026-03-29T21:30:00Z': ['daily snapshot 2 of 5'],
    })
    const utc = applyRetention(times, { keepDaily: 5 }, now)
    expect(kept(utc)).toEqual({ '2026-03-29T22:30:00Z': ['daily snapshot 1 of 5'] })
  })

  it('the two 02:30s of the night summer time ends are two hours', () => {
    const times = snapshots(
      '2026-10-25T00:30:00Z', // 02:30 CEST
      '2026-10-25T01:30:00Z', // 02:30 CET, an hour later
    )
    const decisions = applyRetention(times, { keepHourly: 5, timezone: 'Europe/Amsterdam' }, now)
    expect(decisions.every((d) => d.keep)).toBe(true)
  })

  it('a zone half an hour off UTC puts midnight at 18:30 UTC (Asia/Kolkata)', () => {
    const times = snapshots('2026-01-01T18:29:00Z', '2026-01-01T18:31:00Z')
    const kolkata = applyRetention(times, { keepDaily: 5, timezone: 'Asia/Kolkata' }, now)
    expect(kolkata.every((d) => d.keep)).toBe(true)
    const utc = applyRetention(times, { keepDaily: 5 }, now)
    expect(utc.filter((d) => d.keep)).toHaveLength(1)
  })

  it('an unknown time zone is a ConfigError naming it', () => {
    const apply = () => applyRetention([], { keepDaily: 1, timezone: 'Europe/Atlantis' }, now)
    expect(apply).toThrow(ConfigError)
    expect(apply).toThrow('unknown time zone "Europe/Atlantis"')
  })
})

describe('parseDuration', () => {
  it.each([
    ['24h', 24 * HOUR],
    ['30d', 30 * DAY],
    ['90d', 90 * DAY],
    ['2w', 14 * DAY],
    ['1y', 365 * DAY],
    ['1y6m', (365 + 6 * 30) * DAY],
    ['1y5m7d2h', (365 + 150 + 7) * DAY + 2 * HOUR],
    ['90m', 90 * 30 * DAY],
    ['30 days', 30 * DAY],
    [' 1 Week 2 days ', 9 * DAY],
    ['1 hour', HOUR],
  ])('%s', (text, ms) => {
    expect(parseDuration(text)).toBe(ms)
  })

  it.each([
    ['', 'it is empty'],
    ['abc', 'expected a number and a unit'],
    ['30', 'expected a number and a unit'],
    ['5x', 'unknown unit "x"'],
    ['15min', 'unknown unit "min"'],
    ['1.5d', 'expected a number and a unit'],
    ['-1d', 'it cannot be negative'],
    ['0d', 'it must be longer than zero'],
  ])('rejects %j', (text, problem) => {
    let error: unknown
    try {
      parseDuration(text)
    } catch (caught) {
      error = caught
    }
    expect(error).toBeInstanceOf(ConfigError)
    expect((error as ConfigError).message).toBe(`invalid duration "${text}": ${problem}`)
    expect((error as ConfigError).hint).toContain('m (months, as in restic)')
  })

  it('a bad keep-within is a ConfigError too', () => {
    expect(() => applyRetention([], { keepWithin: '7 fortnights' }, now)).toThrow(ConfigError)
    expect(() => applyRetention([], { keepWithin: -DAY }, now)).toThrow(ConfigError)
  })
})

describe('isEmptyPolicy', () => {
  it.each<[RetentionPolicy, boolean]>([
    [{}, true],
    [{ timezone: 'Europe/Amsterdam' }, true],
    [{ keepDaily: 0, keepMonthly: 0 }, true],
    [{ keepWithin: 0 }, true],
    [{ keepLast: 1 }, false],
    [{ keepDaily: 30, keepMonthly: 12 }, false],
    [{ keepYearly: 1 }, false],
    [{ keepWithin: '30d' }, false],
    [{ keepWithin: DAY }, false],
  ])('%j → %s', (policy, empty) => {
    expect(isEmptyPolicy(policy)).toBe(empty)
  })
})
