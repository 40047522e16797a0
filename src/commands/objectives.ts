import type { KluisConfig } from '../config/config.js'
import { formatDuration } from '../core/format.js'
import type { SnapshotIndex } from '../repository/format.js'

export interface SourceAge {
  source: string
  /** Milliseconds since the source's newest signed snapshot; undefined when it has none. */
  age: number | undefined
}

/** Per configured (or backed-up) source: how old its newest signed snapshot is. */
export function sourceAges(config: KluisConfig, indexes: SnapshotIndex[], now: Date): SourceAge[] {
  const names = new Set([
    ...config.sources.map((s) => s.name),
    ...indexes.flatMap((i) => i.sources.map((s) => s.name)),
  ])
  return [...names].sort().map((source) => {
    const times = indexes
      .filter((index) => index.sources.some((s) => s.name === source))
      .map((index) => Date.parse(index.time))
    return { source, age: times.length > 0 ? now.getTime() - Math.max(...times) : undefined }
  })
}

/** One line per source whose newest snapshot is older than `maxAge` ms (or missing). */
export function rpoFailures(ages: SourceAge[], maxAge: number, objective: string): string[] {
  return ages.flatMap(({ source, age }) => {
    if (age === undefined) return [`source ${source}: no signed snapshot at all (${objective})`]
    if (age <= maxAge) return []
    return [
      `source ${source}: the newest snapshot is ${formatDuration(age / 1000)} old, older than ${formatDuration(maxAge / 1000)} (${objective})`,
    ]
  })
}

/** Hours since the newest snapshot of the source backed up longest ago (the RPO shown). */
export function stalestAgeHours(ages: SourceAge[]): number | undefined {
  const known = ages.flatMap(({ age }) => (age === undefined ? [] : [age]))
  return known.length > 0 ? Math.max(...known) / 3_600_000 : undefined
}
