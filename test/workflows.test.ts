import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { parse } from 'yaml'
import { COMMANDS } from '../src/action/inputs.js'

/**
 * The workflows users copy and the project's own CI: valid for GitHub (action-validator), and
 * written the safe way — no expression interpolated into a shell script, least-privilege
 * permissions, secrets only through env:, only inputs the action declares.
 */
const root = fileURLToPath(new URL('..', import.meta.url))
const workflowsDir = join(root, '.github', 'workflows')
const workflowFiles = readdirSync(workflowsDir).filter((name) => /\.ya?ml$/.test(name))
const validator = join(root, 'node_modules', '@action-validator', 'cli', 'cli.mjs')
const action = parse(readFileSync(join(root, 'action.yml'), 'utf8')) as {
  inputs: Record<string, { description?: string }>
  outputs: Record<string, { description?: string }>
  runs: { using: string; main: string }
}

interface Step {
  uses?: string
  run?: string
  with?: Record<string, unknown>
  env?: Record<string, unknown>
}
interface Workflow {
  permissions?: unknown
  jobs: Record<string, { steps: Step[]; permissions?: unknown }>
}

const workflows = workflowFiles.map((name) => ({
  name,
  text: readFileSync(join(workflowsDir, name), 'utf8'),
  parsed: parse(readFileSync(join(workflowsDir, name), 'utf8')) as Workflow,
}))

describe('workflows and action.yml', () => {
  it('ships the three workflows users copy, next to CI', () => {
    expect(workflowFiles).toEqual(
      expect.arrayContaining(['backup.yml', 'restore-test.yml', 'restore.yml', 'ci.yml']),
    )
  })

  it.each(workflowFiles)('%s passes action-validator', (name) => {
    expect(existsSync(validator), 'npm ci installs @action-validator/cli').toBe(true)
    const result = spawnSync(process.execPath, [validator, join(workflowsDir, name)], {
      encoding: 'utf8',
    })
    expect(result.status, result.stdout + result.stderr).toBe(0)
  })

  it('interpolates no ${{ }} expression into a run: script', () => {
    for (const { name, parsed } of workflows) {
      for (const [job, { steps }] of Object.entries(parsed.jobs)) {
        for (const step of steps) {
          if (step.run === undefined) continue
          expect(step.run, `${name} job ${job}: pass it through env: instead`).not.toContain('${{')
        }
      }
    }
  })

  it('declares least-privilege permissions in every workflow', () => {
    for (const { name, parsed } of workflows) {
      expect(parsed.permissions, name).toBeDefined()
      expect(JSON.stringify(parsed.permissions), name).not.toContain('write-all')
    }
  })

  it('gives the scheduled workflows secrets only through env:', () => {
    for (const { name, parsed } of workflows.filter((w) =>
      ['backup.yml', 'restore-test.yml'].includes(w.name),
    )) {
      for (const { steps } of Object.values(parsed.jobs)) {
        for (const step of steps) {
          expect(JSON.stringify(step.with ?? {}), name).not.toContain('secrets.')
          expect(step.run ?? '', name).not.toContain('secrets.')
        }
      }
    }
  })

  it('calls the action only with commands and inputs it declares', () => {
    for (const { name, parsed } of workflows) {
      for (const { steps } of Object.values(parsed.jobs)) {
        for (const step of steps.filter((s) => s.uses === './')) {
          for (const input of Object.keys(step.with ?? {})) {
            expect(Object.keys(action.inputs), `${name}: input ${input}`).toContain(input)
          }
          expect(COMMANDS as readonly string[], name).toContain(step.with?.command)
        }
      }
    }
  })

  it("README's action usage names every command and output that action.yml declares", () => {
    const readme = readFileSync(join(root, 'README.md'), 'utf8')
    const section = readme.slice(
      readme.indexOf('## As a GitHub Action'),
      readme.indexOf('## Develop'),
    )
    const commandLine = /command: backup\s+# (.+)/.exec(section)?.[1] ?? ''
    expect(commandLine.split(' | ').sort()).toEqual([...COMMANDS].sort())
    for (const output of Object.keys(action.outputs)) {
      expect(section, `output ${output}`).toContain(`\`${output}\``)
    }
  })

  // action-validator's schema predates node24: action.yml gets this check instead.
  it('action.yml runs on node24 from the committed bundle, and documents every input and output', () => {
    expect(action.runs.using).toBe('node24')
    expect(existsSync(join(root, action.runs.main))).toBe(true)
    for (const [name, input] of Object.entries(action.inputs)) {
      expect(input.description, `input ${name}`).toBeTruthy()
    }
    for (const [name, output] of Object.entries(action.outputs)) {
      expect(output.description, `output ${name}`).toBeTruthy()
    }
    const description = action.inputs.command?.description ?? ''
    for (const command of COMMANDS) expect(description).toContain(command)
  })
})

/**
 * restore-test.yml's failure step, run as actions/github-script runs it (an async function of
 * github, context, core, require), against an in-memory issue tracker. One open issue collects
 * every failure.
 */
describe("restore-test.yml's failure report", () => {
  interface Issue {
    number: number
    title: string
    body: string
    state: 'open' | 'closed'
    creator: string
    labels: string[]
    comments: string[]
    pull_request?: object
  }
  const step = workflows
    .find((w) => w.name === 'restore-test.yml')
    ?.parsed.jobs['restore-test']?.steps.find((s) => s.uses?.startsWith('actions/github-script'))
  const script = String(step?.with?.script ?? '')

  function tracker(issues: Issue[]) {
    const issue = (number: number) => {
      const found = issues.find((i) => i.number === number)
      if (!found) throw new Error(`no issue #${number}`)
      return found
    }
    const listForRepo = async (params: { state: string; creator?: string }) => ({
      data: issues.filter(
        (i) => i.state === params.state && (!params.creator || i.creator === params.creator),
      ),
    })
    return {
      paginate: async (list: typeof listForRepo, params: Parameters<typeof listForRepo>[0]) =>
        (await list(params)).data,
      rest: {
        issues: {
          listForRepo,
          create: async (params: { title: string; body: string; labels?: string[] }) => {
            const created: Issue = {
              number: issues.length + 1,
              title: params.title,
              body: params.body,
              state: 'open',
              creator: 'github-actions[bot]',
              labels: params.labels ?? [],
              comments: [],
            }
            issues.push(created)
            return { data: created }
          },
          createComment: async (params: { issue_number: number; body: string }) => {
            issue(params.issue_number).comments.push(params.body)
            return { data: {} }
          },
        },
      },
    }
  }

  async function reportFailure(issues: Issue[], reportPath: string | undefined): Promise<void> {
    const AsyncFunction = Object.getPrototypeOf(async () => {}).constructor as new (
      ...args: string[]
    ) => (...values: unknown[]) => Promise<void>
    const saved = { ...process.env }
    process.env.REPORT_PATH = reportPath ?? ''
    process.env.RUN_URL = 'https://github.com/acme/app/actions/runs/42'
    try {
      const run = new AsyncFunction('github', 'context', 'core', 'require', script)
      await run(
        tracker(issues),
        { repo: { owner: 'acme', repo: 'app' } },
        { info: () => undefined },
        createRequire(import.meta.url),
      )
    } finally {
      process.env.REPORT_PATH = saved.REPORT_PATH
      process.env.RUN_URL = saved.RUN_URL
      if (saved.REPORT_PATH === undefined) delete process.env.REPORT_PATH
      if (saved.RUN_URL === undefined) delete process.env.RUN_URL
    }
  }

  it('opens one issue with the report, then comments on it, and opens a new one once it is closed', async () => {
    expect(script).toContain('github.rest.issues')
    const dir = mkdtempSync(join(tmpdir(), 'kluis-report-'))
    try {
      const report = join(dir, 'report.json')
      // A file name in the report that tries to close the code fence.
      writeFileSync(report, JSON.stringify({ passed: false, failures: ['file ```x``` gone'] }))
      const issues: Issue[] = [
        {
          number: 1,
          title: 'kluis restore test failed',
          body: 'opened by a person',
          state: 'open',
          creator: 'someone',
          labels: [],
          comments: [],
        },
      ]

      await reportFailure(issues, report)
      expect(issues).toHaveLength(2)
      const opened = issues[1] as Issue
      expect(opened.title).toBe('kluis restore test failed')
      expect(opened.body).toContain('https://github.com/acme/app/actions/runs/42')
      expect(opened.body).toContain('file ```x``` gone')
      expect(opened.body).toMatch(/^````json$/m)
      expect(opened.labels).toEqual(['kluis-restore-test'])

      await reportFailure(issues, undefined)
      expect(issues).toHaveLength(2)
      expect(opened.comments).toEqual([expect.stringContaining('no report')])

      opened.state = 'closed'
      await reportFailure(issues, report)
      expect(issues).toHaveLength(3)
      expect(issues[2]?.state).toBe('open')
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
