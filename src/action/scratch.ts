import { randomBytes } from 'node:crypto'
import { mkdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as core from '@actions/core'

/** The state key under which the main step tells the post step what to remove. */
const SCRATCH_STATE = 'scratch'

/**
 * A folder for this step's temporary files (database copies, dumps, git clones): kluis's own
 * KLUIS_TMPDIR unless the workflow set one. The post step removes it even when the job failed
 * or was cancelled, which a killed process cannot do itself.
 */
export function prepareScratch(env: NodeJS.ProcessEnv): void {
  if (env.KLUIS_TMPDIR) return
  const scratch = join(env.RUNNER_TEMP || tmpdir(), `kluis-${randomBytes(6).toString('hex')}`)
  mkdirSync(scratch, { recursive: true, mode: 0o700 })
  core.saveState(SCRATCH_STATE, scratch)
  env.KLUIS_TMPDIR = scratch
}

/** The post step: removes the main step's scratch folder, whatever became of that step. */
export function removeScratch(): void {
  const scratch = core.getState(SCRATCH_STATE)
  if (!scratch) return
  rmSync(scratch, { recursive: true, force: true, maxRetries: 3 })
  core.info(`removed kluis's temporary files (${scratch})`)
}
