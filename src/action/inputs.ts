import * as core from '@actions/core'
import { ConfigError } from '../core/errors.js'
import { parseTimestamp } from '../core/time.js'
import { parseDuration } from '../retention/policy.js'

/**
 * Every input of action.yml, read once and checked before any work starts (the pattern of
 * actions/checkout's input-helper). Errors quote the bad value and say what was expected.
 */

export const COMMANDS = [
  'backup',
  'snapshots',
  'restore',
  'check',
  'prune',
  'restore-test',
] as const
export type Command = (typeof COMMANDS)[number]

export interface ActionSettings {
  command: Command
  /** The configuration file, relative to the working directory. */
  config: string
  /** Sources to back up or restore; empty means all. */
  sources: string[]
  snapshot: string | undefined
  at: Date | undefined
  target: string | undefined
  /** The reader's private key files; without any the core reads KLUIS_READER_KEY. */
  keyPaths: string[]
  force: boolean
  readData: boolean
  /** check: the RPO, in milliseconds. */
  maxAge: number | undefined
  /** prune: decide and report only. */
  dryRun: boolean
  /** restore-test: also test one random older snapshot. */
  alsoRandomOlder: boolean
}

export function readInputs(): ActionSettings {
  // action.yml marks `command` required, but the runner does not enforce that.
  const command = parseCommand(core.getInput('command', { required: true }))
  const settings: ActionSettings = {
    command,
    config: core.getInput('config') || 'kluis.yml',
    sources: parseList(core.getInput('source')),
    snapshot: core.getInput('snapshot') || undefined,
    at: parseTime(core.getInput('at')),
    target: core.getInput('target') || undefined,
    keyPaths: parseList(core.getInput('key')),
    force: booleanInput('force'),
    readData: booleanInput('read-data'),
    maxAge: core.getInput('max-age') ? parseMaxAge(core.getInput('max-age')) : undefined,
    dryRun: booleanInput('dry-run'),
    alsoRandomOlder: booleanInput('also-random-older'),
  }
  checkCombination(settings)
  return settings
}

function parseCommand(value: string): Command {
  const command = COMMANDS.find((name) => name === value)
  if (!command) {
    throw new ConfigError(`Invalid command '${value}'. Expected one of: ${COMMANDS.join(', ')}.`)
  }
  return command
}

/** "a, b" or one name per line (a YAML block scalar). */
function parseList(value: string): string[] {
  return value
    .split(/[,\n]/)
    .map((item) => item.trim())
    .filter((item) => item !== '')
}

function parseTime(value: string): Date | undefined {
  if (value === '') return undefined
  const time = parseTimestamp(value)
  if (!time) {
    throw new ConfigError(
      `Invalid at '${value}'. Expected an ISO 8601 time, e.g. 2026-11-20T10:00:00Z.`,
    )
  }
  return time
}

function parseMaxAge(value: string): number {
  try {
    return parseDuration(value)
  } catch {
    throw new ConfigError(`Invalid max-age '${value}'. Expected a duration such as 24h or 2d.`)
  }
}

/**
 * The runner fills in action.yml's default ('false'); a run without it (node dist/action.js
 * by hand) would otherwise fail on an empty value, which getBooleanInput rejects.
 */
function booleanInput(name: string): boolean {
  return core.getInput(name) !== '' && core.getBooleanInput(name)
}

function checkCombination(settings: ActionSettings): void {
  if (settings.command === 'restore' && !settings.target) {
    throw new ConfigError(
      "Input 'target' is required for restore.",
      'set target to the directory to restore into',
    )
  }
  if (settings.snapshot && settings.at) {
    throw new ConfigError("Inputs 'snapshot' and 'at' exclude each other; give one of them.")
  }
  if (settings.command === 'check' && settings.keyPaths.length > 0 && !settings.readData) {
    throw new ConfigError(
      "Input 'key' is only used by check when 'read-data' is true.",
      "set read-data: true to decrypt and verify every chunk, or remove 'key'",
    )
  }
}
