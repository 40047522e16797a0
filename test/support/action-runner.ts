import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { expect } from 'vitest'
import { parse as parseYaml } from 'yaml'

/**
 * Runs the bundled action (dist/action.js, then dist/post.js) the way the runner does: a Node
 * 24 child process with INPUT_* variables (action.yml defaults filled in), GITHUB_OUTPUT,
 * GITHUB_STATE and GITHUB_STEP_SUMMARY files, and RUNNER_TEMP. Exit code, log, outputs and
 * summary are what a workflow would see. (`npm test` rebuilds the bundle first, see pretest.)
 */

export const root = resolve(import.meta.dirname, '..', '..')
const bundle = join(root, 'dist', 'action.js')
const postBundle = join(root, 'dist', 'post.js')

export interface ActionYml {
  runs: { using: string; main: string; post?: string; 'post-if'?: string }
  inputs: Record<string, { required?: boolean; default?: string }>
  outputs: Record<string, { description: string }>
}

export async function readActionYml(): Promise<ActionYml> {
  return parseYaml(await readFile(join(root, 'action.yml'), 'utf8')) as ActionYml
}

export interface ActionRun {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
  outputs: Record<string, string>
  /** What the main step saved for the post step (GITHUB_STATE). */
  state: Record<string, string>
  summary: string
}

export interface RunningAction {
  child: ChildProcess
  /** RUNNER_TEMP, kept for the post step: the caller removes it. */
  runnerTemp: string
  /** What the main step has saved for the post step so far (it is written as it goes). */
  state(): Promise<Record<string, string>>
  finished: Promise<ActionRun>
}

/** Starts the action's main step; `finished` settles when it exits. */
export async function startAction(
  cwd: string,
  inputs: Record<string, string>,
  env: Record<string, string> = {},
): Promise<RunningAction> {
  const actionYml = await readActionYml()
  const runnerTemp = await mkdtemp(join(tmpdir(), 'kluis-runner-'))
  const outputFile = join(runnerTemp, 'output.txt')
  const stateFile = join(runnerTemp, 'state.txt')
  const summaryFile = join(runnerTemp, 'summary.md')
  for (const file of [outputFile, stateFile, summaryFile]) await writeFile(file, '')
  const defaults = Object.entries(actionYml.inputs).flatMap(([name, input]) =>
    input.default === undefined ? [] : [[name, input.default] as const],
  )
  const inputEnv = Object.fromEntries(
    Object.entries({ ...Object.fromEntries(defaults), ...inputs }).map(([name, value]) => [
      `INPUT_${name.replace(/ /g, '_').toUpperCase()}`,
      value,
    ]),
  )
  const child = spawn(process.execPath, [bundle], {
    cwd,
    env: {
      ...cleanEnv(),
      ...inputEnv,
      GITHUB_OUTPUT: outputFile,
      GITHUB_STATE: stateFile,
      GITHUB_STEP_SUMMARY: summaryFile,
      RUNNER_TEMP: runnerTemp,
      ...env,
    },
  })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (text: string) => {
    stdout += text
  })
  child.stderr.setEncoding('utf8').on('data', (text: string) => {
    stderr += text
  })
  const timeout = setTimeout(() => child.kill('SIGKILL'), 60_000)
  const finished = new Promise<ActionRun>((resolve, reject) => {
    child.once('error', reject)
    child.once('close', (code, signal) => {
      clearTimeout(timeout)
      void (async () => {
        try {
          resolve({
            code,
            signal,
            stdout,
            stderr,
            outputs: parseOutputs(await readFile(outputFile, 'utf8')),
            state: parseOutputs(await readFile(stateFile, 'utf8')),
            summary: await readFile(summaryFile, 'utf8'),
          })
        } catch (error) {
          reject(error)
        }
      })()
    })
  })
  return {
    child,
    runnerTemp,
    state: async () => parseOutputs(await readFile(stateFile, 'utf8')),
    finished,
  }
}

export async function runAction(
  cwd: string,
  inputs: Record<string, string>,
  env: Record<string, string> = {},
): Promise<ActionRun> {
  const action = await startAction(cwd, inputs, env)
  try {
    return await action.finished
  } finally {
    await rm(action.runnerTemp, { recursive: true, force: true })
  }
}

/**
 * Runs the post step with the state the main step saved, as the runner does after the job.
 * Asynchronous, so that servers in the test process (a proxy) can answer it.
 */
export async function runPostStep(
  state: Record<string, string>,
  env: Record<string, string> = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const post = spawn(process.execPath, [postBundle], {
    env: {
      ...cleanEnv(),
      ...Object.fromEntries(Object.entries(state).map(([name, value]) => [`STATE_${name}`, value])),
      ...env,
    },
  })
  let stdout = ''
  let stderr = ''
  post.stdout.setEncoding('utf8').on('data', (text: string) => {
    stdout += text
  })
  post.stderr.setEncoding('utf8').on('data', (text: string) => {
    stderr += text
  })
  const timeout = setTimeout(() => post.kill('SIGKILL'), 60_000)
  const code = await new Promise<number | null>((resolve, reject) => {
    post.once('error', reject)
    post.once('close', resolve)
  }).finally(() => clearTimeout(timeout))
  return { code, stdout, stderr }
}

/** This process's environment without anything that would change what the action does. */
export function cleanEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !/^(INPUT_|KLUIS_|GITHUB_|RUNNER_)/.test(name)),
  )
}

/** GITHUB_OUTPUT and GITHUB_STATE hold `name<<DELIMITER\nvalue\nDELIMITER` blocks. */
function parseOutputs(text: string): Record<string, string> {
  const outputs: Record<string, string> = {}
  const lines = text.split('\n')
  for (let i = 0; i < lines.length; i++) {
    const match = /^([^<]+)<<(.+)$/.exec(lines[i] ?? '')
    if (!match) continue
    const [, name, delimiter] = match as unknown as [string, string, string]
    const end = lines.indexOf(delimiter, i + 1)
    expect(end, `unterminated output ${name}`).toBeGreaterThan(i)
    outputs[name] = lines.slice(i + 1, end).join('\n')
    i = end
  }
  return outputs
}
