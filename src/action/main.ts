import * as core from '@actions/core'
import { loadConfig } from '../config/config.js'
import { describeSystemError, errorMessage, KluisError } from '../core/errors.js'
import { runCommand } from './commands.js'
import { readInputs } from './inputs.js'
import { outputsFor } from './outputs.js'
import { withCommandsStopped } from './reporter.js'
import { prepareScratch } from './scratch.js'
import { maskDatabasePasswords, maskSecrets } from './secrets.js'
import { writeSummary } from './summary.js'

/**
 * The action's boundary with GitHub Actions: inputs in; log, outputs and job summary out; one
 * catch that fails the step. Everything else is the same core the CLI runs.
 */
export async function run(): Promise<void> {
  // First of all: nothing may reach the log before the runner knows what to mask.
  maskSecrets(process.env)
  try {
    prepareScratch(process.env)
    const settings = readInputs()
    const config = await loadConfig(settings.config, process.env)
    // Masks work only while workflow commands are on: before withCommandsStopped. A restore
    // target's password arrives as a plain input, not as a secret the runner knows.
    maskDatabasePasswords(config, settings.target)
    const started = performance.now()
    const outcome = await withCommandsStopped((reporter) =>
      runCommand(settings, config, reporter, process.env),
    )
    const seconds = (performance.now() - started) / 1000
    for (const [name, value] of Object.entries(outputsFor(outcome, seconds))) {
      core.setOutput(name, value)
    }
    await writeSummary(outcome)
    // Like the CLI, a check that finds problems fails; outputs and summary are written first.
    if (outcome.command === 'restore-test' && !outcome.result.passed) {
      core.setFailed(
        `restore-test failed: ${outcome.result.failures.length} failure(s)\n` +
          'hint: the job summary and the log name each one; the report is at the report-path output',
      )
    }
    if (outcome.command === 'check' && outcome.result.problems.length > 0) {
      core.setFailed(
        `check found ${outcome.result.problems.length} problem(s)\n` +
          'hint: the job summary and the log list them',
      )
    }
  } catch (error) {
    fail(error)
  }
}

function fail(error: unknown): void {
  if (error instanceof KluisError) {
    core.setFailed(error.hint ? `${error.message}\nhint: ${error.hint}` : error.message)
    return
  }
  const system = describeSystemError(error)
  if (system) {
    core.setFailed(`${system.message}\nhint: ${system.hint}`)
    return
  }
  // Not ours: the message only. The stack goes to the debug log (shown with step debugging).
  core.setFailed(errorMessage(error))
  if (error instanceof Error && error.stack) core.debug(error.stack)
}
