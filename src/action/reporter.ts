import { randomBytes } from 'node:crypto'
import * as core from '@actions/core'
import type { Reporter } from '../core/reporter.js'

/** The runner shows only this many warning annotations per step and drops the rest. */
const MAX_ANNOTATIONS = 10

/**
 * Runs `work` with a Reporter that writes to the job log while workflow commands are switched
 * off: messages carry file and source names, and a name such as "\n::add-path::…" must not
 * become a command. Warnings are logged in place and turned into annotations after commands
 * are back on (core.warning escapes them). Errors and outputs are for the caller, afterwards.
 */
export async function withCommandsStopped<T>(work: (reporter: Reporter) => Promise<T>): Promise<T> {
  // An unguessable token: only this process can switch commands back on.
  const token = randomBytes(16).toString('hex')
  const warnings: string[] = []
  const reporter: Reporter = {
    info: (message) => core.info(message),
    warn: (message) => {
      core.info(`warning: ${message}`)
      warnings.push(message)
    },
    // ::debug:: is a workflow command too, so while they are off debug text is plain log text.
    debug: (message) => {
      if (core.isDebug()) core.info(`debug: ${message}`)
    },
  }
  process.stdout.write(`::stop-commands::${token}\n`)
  try {
    return await work(reporter)
  } finally {
    process.stdout.write(`::${token}::\n`)
    annotate(warnings)
  }
}

function annotate(warnings: string[]): void {
  const shown =
    warnings.length <= MAX_ANNOTATIONS ? warnings : warnings.slice(0, MAX_ANNOTATIONS - 1)
  for (const warning of shown) core.warning(warning)
  const rest = warnings.length - shown.length
  if (rest > 0) core.warning(`${rest} more warning(s); the job log has all of them`)
}
