import * as core from '@actions/core'
import { formatBytes, formatDuration, formatTime } from '../core/format.js'
import type { CommandResult } from './commands.js'

type Row = Parameters<typeof core.summary.addTable>[0][number]

/** A step's summary is limited to 1 MiB; a badly damaged repository can have many problems. */
const MAX_LISTED_PROBLEMS = 500

/**
 * The job summary: a heading and a table per command. core.summary writes HTML without
 * escaping, and names, paths and problems come from user data, so every cell is escaped here.
 */
export async function writeSummary(outcome: CommandResult): Promise<void> {
  // Outside a runner (node dist/action.js by hand) there is no summary file to append to.
  if (!process.env.GITHUB_STEP_SUMMARY) return
  const summary = core.summary
  switch (outcome.command) {
    case 'backup': {
      const { result } = outcome
      const rows: Row[] = result.sources.map((s) => [
        html(s.name),
        html(s.type),
        formatBytes(s.size),
        `${s.newChunks} of ${s.chunks}`,
        formatBytes(s.storedAdded),
      ])
      const newChunks = result.sources.reduce((sum, s) => sum + s.newChunks, 0)
      const chunks = result.sources.reduce((sum, s) => sum + s.chunks, 0)
      const stored = result.sources.reduce((sum, s) => sum + s.storedAdded, 0)
      summary
        .addHeading('kluis backup', 2)
        .addTable([
          header('Source', 'Type', 'Size', 'New chunks', 'Stored'),
          ...rows,
          [
            // An empty cell would be written as an unclosed <td>: span the type column instead.
            { data: '<strong>Total</strong>', colspan: '2' },
            formatBytes(result.bytesTotal),
            `${newChunks} of ${chunks}`,
            formatBytes(stored),
          ],
        ])
        .addRaw(
          `<p>Snapshot <code>${result.snapshotId}</code> of ${html(formatTime(result.time))} UTC ` +
            `saved: ${formatBytes(result.bytesAdded)} added to the repository ` +
            `in ${formatDuration(result.durationSeconds)}.</p>`,
          true,
        )
      break
    }
    case 'snapshots': {
      const { snapshots } = outcome
      summary
        .addHeading('kluis snapshots', 2)
        .addTable([
          header('ID', 'Time (UTC)', 'Host', 'Sources', 'Size'),
          ...snapshots.map((s) => [
            `<code>${s.id}</code>`,
            html(formatTime(s.time)),
            html(s.host),
            html(s.sources.map((source) => source.name).join(', ')),
            formatBytes(s.size),
          ]),
        ])
        .addRaw(`<p>${snapshots.length} snapshot(s).</p>`, true)
      break
    }
    case 'restore': {
      const { result } = outcome
      summary
        .addHeading('kluis restore', 2)
        .addTable([
          header('Source', 'Type', 'Size', 'Restored', 'Path'),
          ...result.sources.map((s) => [
            html(s.name),
            html(s.type),
            formatBytes(s.size),
            html(s.description),
            `<code>${html(s.path)}</code>`,
          ]),
        ])
        .addRaw(
          `<p>Snapshot <code>${result.snapshotId}</code> of ${html(formatTime(result.time))} UTC ` +
            `verified and restored to <code>${html(result.target)}</code> ` +
            `in ${formatDuration(result.durationSeconds)}.</p>`,
          true,
        )
      break
    }
    case 'check': {
      const { result } = outcome
      summary
        .addHeading('kluis check', 2)
        .addTable([
          header(
            'Snapshots',
            'Chunks referenced',
            'Chunks read',
            'Unreferenced chunks',
            'Problems',
          ),
          [
            String(result.snapshots),
            String(result.chunksReferenced),
            String(result.chunksRead),
            String(result.unreferencedChunks),
            String(result.problems.length),
          ],
        ])
      if (result.warnings.length > 0) {
        summary.addRaw('<p>Warnings:</p>', true).addList(result.warnings.map(html))
      }
      if (result.problems.length === 0) summary.addRaw('<p>No problems found.</p>', true)
      else {
        summary.addList(result.problems.slice(0, MAX_LISTED_PROBLEMS).map(html))
        const rest = result.problems.length - MAX_LISTED_PROBLEMS
        if (rest > 0)
          summary.addRaw(`<p>… and ${rest} more; the job log has all of them.</p>`, true)
      }
      if (result.newestSnapshotAgeHours !== undefined) {
        summary.addRaw(
          `<p>Newest snapshot of the least recently backed-up source: ${result.newestSnapshotAgeHours.toFixed(1)} hours old.</p>`,
          true,
        )
      }
      break
    }
    case 'restore-test': {
      const { result } = outcome
      summary
        .addHeading(`kluis restore-test: ${result.passed ? 'passed' : 'FAILED'}`, 2)
        .addTable([
          header('Source', 'Type', 'Snapshot', 'Time', 'Result'),
          ...result.sources.map((s) => [
            html(s.name),
            s.type,
            `<code>${s.snapshot.slice(0, 8)}</code>`,
            formatDuration(s.seconds),
            s.passed ? 'passed' : '<strong>FAILED</strong>',
          ]),
        ])
        .addRaw(
          `<p>RTO demonstrated: ${formatDuration(result.rtoSeconds)}` +
            (result.objectives.rto !== undefined
              ? ` (objective ${formatDuration(result.objectives.rto)})`
              : '') +
            `. RPO demonstrated: ${result.rpoHours === undefined ? 'unknown' : `${result.rpoHours.toFixed(1)} h`}` +
            (result.objectives.rpo !== undefined ? ` (objective ${result.objectives.rpo} h)` : '') +
            '.</p>',
          true,
        )
      if (result.failures.length > 0) {
        summary.addList(result.failures.slice(0, MAX_LISTED_PROBLEMS).map(html))
      }
      break
    }
    case 'prune': {
      const { result } = outcome
      summary
        .addHeading(result.dryRun ? 'kluis prune (dry run)' : 'kluis prune', 2)
        .addTable([
          header('Snapshot', 'Time', 'Decision', 'Why'),
          ...result.decisions.map((d) => [
            `<code>${d.id.slice(0, 8)}</code>`,
            html(formatTime(d.time)),
            d.keep ? 'keep' : 'remove',
            html(d.keep ? d.reasons.join('; ') : 'not kept by any rule'),
          ]),
        ])
        .addRaw(
          result.dryRun
            ? `<p>${result.removedSnapshots} snapshot(s) would be removed; nothing was changed.</p>`
            : `<p>Removed ${result.removedSnapshots} snapshot(s) and ${result.removedChunks} chunk(s), freeing ${formatBytes(result.freedBytes)}.</p>`,
          true,
        )
      break
    }
  }
  await summary.write()
}

function header(...cells: string[]): Row {
  return cells.map((data) => ({ data, header: true }))
}

function html(text: string): string {
  return text
    .replaceAll('&', '&amp;')
    .replaceAll('<', '&lt;')
    .replaceAll('>', '&gt;')
    .replaceAll('"', '&quot;')
}
