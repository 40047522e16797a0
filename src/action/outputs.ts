import type { CommandResult } from './commands.js'

/** The step outputs action.yml declares, for the command that ran. */
export function outputsFor(
  outcome: CommandResult,
  durationSeconds: number,
): Record<string, string> {
  const duration = { 'duration-seconds': durationSeconds.toFixed(1) }
  switch (outcome.command) {
    case 'backup':
      return {
        'snapshot-id': outcome.result.snapshotId,
        'bytes-added': String(outcome.result.bytesAdded),
        'bytes-total': String(outcome.result.bytesTotal),
        ...duration,
      }
    case 'restore':
      return { 'snapshot-id': outcome.result.snapshotId, ...duration }
    case 'check': {
      const age = outcome.result.newestSnapshotAgeHours
      return {
        problems: String(outcome.result.problems.length),
        ...(age !== undefined ? { 'newest-snapshot-age-hours': age.toFixed(1) } : {}),
        ...duration,
      }
    }
    case 'restore-test':
      return {
        passed: String(outcome.result.passed),
        'rto-seconds': outcome.result.rtoSeconds.toFixed(1),
        ...(outcome.result.rpoHours !== undefined
          ? { 'rpo-hours': outcome.result.rpoHours.toFixed(1) }
          : {}),
        'report-path': outcome.reportPath,
        'snapshot-id': outcome.result.snapshot.id,
        ...duration,
      }
    case 'prune':
      return { 'snapshots-removed': String(outcome.result.removedSnapshots), ...duration }
    case 'snapshots':
      return duration
  }
}
