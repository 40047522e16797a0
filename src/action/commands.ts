import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type BackupResult, backup } from '../commands/backup.js'
import { type CheckResult, check } from '../commands/check.js'
import { type PruneResult, prune } from '../commands/prune.js'
import { type RestoreResult, restore } from '../commands/restore.js'
import { type RestoreTestResult, restoreTest } from '../commands/restore-test.js'
import { listSnapshots, type SnapshotSummary } from '../commands/snapshots.js'
import type { KluisConfig } from '../config/config.js'
import { formatBytes, formatDuration, formatTime } from '../core/format.js'
import type { Reporter } from '../core/reporter.js'
import type { ActionSettings } from './inputs.js'

/** What a command produced, tagged so outputs and the summary can tell them apart. */
export type CommandResult =
  | { command: 'backup'; result: BackupResult }
  | { command: 'snapshots'; snapshots: SnapshotSummary[] }
  | { command: 'restore'; result: RestoreResult }
  | { command: 'check'; result: CheckResult }
  | { command: 'prune'; result: PruneResult }
  | { command: 'restore-test'; result: RestoreTestResult; reportPath: string }

/** Runs the chosen command like the CLI does, logging a short result through the reporter. */
export async function runCommand(
  settings: ActionSettings,
  config: KluisConfig,
  reporter: Reporter,
  env: NodeJS.ProcessEnv,
): Promise<CommandResult> {
  switch (settings.command) {
    case 'backup': {
      const result = await backup(
        config,
        settings.sources.length > 0 ? { sources: settings.sources } : {},
        reporter,
        env,
      )
      reporter.info(
        `snapshot ${result.snapshotId} saved: ${formatBytes(result.bytesAdded)} added ` +
          `for ${formatBytes(result.bytesTotal)} processed in ${formatDuration(result.durationSeconds)}`,
      )
      return { command: 'backup', result }
    }
    case 'snapshots': {
      const snapshots = await listSnapshots(config, reporter, env)
      for (const s of snapshots) {
        reporter.info(
          `${s.id.slice(0, 8)}  ${formatTime(s.time)}  ${s.host}  ${formatBytes(s.size)}`,
        )
      }
      reporter.info(`${snapshots.length} snapshot(s)`)
      return { command: 'snapshots', snapshots }
    }
    case 'restore': {
      const result = await restore(
        config,
        {
          // readInputs made sure a restore has a target.
          target: settings.target ?? '',
          force: settings.force,
          ...(settings.keyPaths.length > 0 ? { keyPaths: settings.keyPaths } : {}),
          ...(settings.snapshot ? { snapshot: settings.snapshot } : {}),
          ...(settings.at ? { at: settings.at } : {}),
          ...(settings.sources.length > 0 ? { sources: settings.sources } : {}),
        },
        reporter,
        env,
      )
      for (const s of result.sources) reporter.info(`${s.name}: ${s.description} → ${s.path}`)
      reporter.info(
        `restored snapshot ${result.snapshotId} of ${formatTime(result.time)} in ${formatDuration(result.durationSeconds)}`,
      )
      return { command: 'restore', result }
    }
    case 'check': {
      const result = await check(
        config,
        {
          readData: settings.readData,
          ...(settings.maxAge !== undefined ? { maxAge: settings.maxAge } : {}),
          ...(settings.keyPaths.length > 0 ? { keyPaths: settings.keyPaths } : {}),
        },
        reporter,
        env,
      )
      for (const problem of result.problems) reporter.info(`problem: ${problem}`)
      reporter.info(
        `${result.snapshots} snapshot(s), ${result.chunksReferenced} chunk(s) referenced, ` +
          `${result.chunksRead} read; ${result.problems.length} problem(s)`,
      )
      return { command: 'check', result }
    }
    case 'restore-test': {
      // The report goes where later steps (an issue on failure, an artifact) can pick it up.
      const reportPath = join(env.RUNNER_TEMP || tmpdir(), 'kluis-restore-test.json')
      const result = await restoreTest(
        config,
        {
          alsoRandomOlder: settings.alsoRandomOlder,
          reportFile: reportPath,
          ...(settings.keyPaths.length > 0 ? { keyPaths: settings.keyPaths } : {}),
          ...(settings.snapshot ? { snapshot: settings.snapshot } : {}),
          ...(settings.at ? { at: settings.at } : {}),
        },
        reporter,
        env,
      )
      for (const s of result.sources) {
        reporter.info(
          `${s.name}: ${s.passed ? 'passed' : 'FAILED'} in ${formatDuration(s.seconds)}: ${s.detail}`,
        )
      }
      for (const failure of result.failures) reporter.info(`failure: ${failure}`)
      return { command: 'restore-test', result, reportPath }
    }
    case 'prune': {
      const result = await prune(config, { dryRun: settings.dryRun }, reporter, env)
      for (const d of result.decisions) {
        reporter.info(
          `${d.id.slice(0, 8)}  ${formatTime(d.time)}  ${d.keep ? `keep: ${d.reasons.join('; ')}` : 'remove'}`,
        )
      }
      reporter.info(
        result.dryRun
          ? `dry run: ${result.removedSnapshots} snapshot(s) would be removed`
          : `removed ${result.removedSnapshots} snapshot(s) and ${result.removedChunks} chunk(s), freeing ${formatBytes(result.freedBytes)}`,
      )
      return { command: 'prune', result }
    }
  }
}
