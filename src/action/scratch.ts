import { randomBytes } from 'node:crypto'
import { mkdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as core from '@actions/core'
import type { Reporter } from '../core/reporter.js'
import { unfinishedUploads } from '../storage/s3-multipart-journal.js'

/** The state key under which the main step tells the post step what to clean up. */
const SCRATCH_STATE = 'scratch'
/** In the scratch folder: the S3 multipart uploads the main step started and did not finish. */
const MULTIPART_JOURNAL = 'multipart-uploads.jsonl'

/**
 * A folder of this step's own for its temporary files (database copies, dumps, git clones),
 * inside the workflow's KLUIS_TMPDIR or the runner's temp folder, and the journal of its
 * multipart uploads. The post step cleans both up even when the job failed or was cancelled,
 * which a killed process cannot do itself.
 */
export function prepareScratch(env: NodeJS.ProcessEnv): void {
  const parent = env.KLUIS_TMPDIR || env.RUNNER_TEMP || tmpdir()
  const scratch = join(parent, `kluis-${randomBytes(6).toString('hex')}`)
  mkdirSync(scratch, { recursive: true, mode: 0o700 })
  core.saveState(SCRATCH_STATE, scratch)
  env.KLUIS_TMPDIR = scratch
  env.KLUIS_MULTIPART_JOURNAL = join(scratch, MULTIPART_JOURNAL)
}

/**
 * The post step: aborts the multipart uploads the main step left unfinished (only those: other
 * jobs writing to the same bucket are not touched), then removes the scratch folder.
 */
export async function cleanUpScratch(reporter: Reporter): Promise<void> {
  const scratch = core.getState(SCRATCH_STATE)
  if (!scratch) return
  const journal = join(scratch, MULTIPART_JOURNAL)
  if (unfinishedUploads(journal).length > 0) {
    // Loaded only when needed: the AWS SDK is large, and most runs leave nothing to abort.
    const { abortUnfinishedUploads } = await import('../storage/s3-multipart.js')
    await abortUnfinishedUploads(journal, reporter)
  }
  rmSync(scratch, { recursive: true, force: true, maxRetries: 3 })
  core.info(`removed kluis's temporary files (${scratch})`)
}
