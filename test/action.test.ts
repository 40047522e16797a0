import { existsSync } from 'node:fs'
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import {
  type ActionYml,
  readActionYml,
  root,
  runAction,
  runPostStep,
} from './support/action-runner.js'
import { createProject, exampleConfig, type Project, sqlite } from './support/project.js'

let actionYml: ActionYml

beforeAll(async () => {
  actionYml = await readActionYml()
})

function secretLines(secret: string): string[] {
  return secret
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '')
}

const ciConfig = exampleConfig.replace('writer: keys/writer.key', 'writer: ${KLUIS_WRITER_KEY}')

describe('the action, run like the runner runs it', () => {
  let project: Project
  afterEach(async () => {
    await project?.cleanup()
  })

  it('backs up with the writer key from the environment, masked, and sets outputs and summary', async () => {
    project = await createProject({ config: ciConfig })
    const writerKey = await readFile(join(project.dir, 'keys', 'writer.key'), 'utf8')
    expect((await project.run(['init'], { KLUIS_WRITER_KEY: writerKey })).code).toBe(0)

    const run = await runAction(project.dir, { command: 'backup' }, { KLUIS_WRITER_KEY: writerKey })

    expect(run.stderr).toBe('')
    expect(run.code, run.stdout + run.stderr).toBe(0)
    expect(run.outputs['snapshot-id']).toMatch(/^[0-9a-f]{32}$/)
    expect(Number(run.outputs['bytes-added'])).toBeGreaterThan(0)
    expect(Number(run.outputs['bytes-total'])).toBeGreaterThan(
      Number(run.outputs['bytes-added']) / 2,
    )
    expect(Number(run.outputs['duration-seconds'])).toBeGreaterThanOrEqual(0)

    expect(run.summary).toContain('<table>')
    expect(run.summary).toContain('<td>app-db</td>')
    expect(run.summary).toContain('<td>uploads</td>')
    expect(run.summary).toContain(run.outputs['snapshot-id'])
    expect(run.summary).toMatch(/<td colspan="2"><strong>Total<\/strong><\/td><td>[^<]+<\/td>/)

    // Every line of the key is masked before anything else is printed…
    const lines = run.stdout.split('\n')
    const masks = lines.filter((line) => line.startsWith('::add-mask::'))
    expect(masks).toEqual(secretLines(writerKey).map((line) => `::add-mask::${line}`))
    expect(lines.slice(0, masks.length)).toEqual(masks)
    // …and no line of it appears anywhere else.
    const rest = lines.slice(masks.length).join('\n')
    for (const line of secretLines(writerKey)) expect(rest).not.toContain(line)
  })

  it('restores with the reader key from KLUIS_READER_KEY, byte for byte', async () => {
    project = await createProject()
    expect((await project.run(['init'])).code).toBe(0)
    const backup = await project.run(['backup', '--json'])
    expect(backup.code).toBe(0)
    const snapshotId = (JSON.parse(backup.stdout) as { snapshotId: string }).snapshotId
    const readerKey = await readFile(join(project.dir, 'keys', 'reader.key'), 'utf8')

    const run = await runAction(
      project.dir,
      { command: 'restore', target: 'restored' },
      { KLUIS_READER_KEY: readerKey },
    )

    expect(run.code, run.stdout + run.stderr).toBe(0)
    expect(run.outputs['snapshot-id']).toBe(snapshotId)
    expect(Number(run.outputs['duration-seconds'])).toBeGreaterThanOrEqual(0)
    const restored = join(project.dir, 'restored')
    expect(await readFile(join(restored, 'uploads', 'docs', 'readme.txt'))).toEqual(
      await readFile(join(project.dir, 'data', 'uploads', 'docs', 'readme.txt')),
    )
    expect(existsSync(join(restored, 'uploads', 'scratch.tmp'))).toBe(false)
    const dump = (file: string) =>
      sqlite(file, ['SELECT id, name, hex(bio) FROM users ORDER BY id'])
    expect(dump(join(restored, 'app-db', 'app.db'))).toEqual(
      dump(join(project.dir, 'data', 'app.db')),
    )
    expect(run.summary).toContain('kluis restore')
    expect(run.summary).toContain(restored)
    for (const line of secretLines(readerKey)) {
      expect(run.stdout).toContain(`::add-mask::${line}`)
    }
  })

  it('checks the repository with read-data and reports the problem count', async () => {
    project = await createProject()
    expect((await project.run(['init'])).code).toBe(0)
    expect((await project.run(['backup'])).code).toBe(0)

    const run = await runAction(project.dir, {
      command: 'check',
      'read-data': 'true',
      key: 'keys/reader.key',
    })

    expect(run.code, run.stdout + run.stderr).toBe(0)
    expect(run.outputs.problems).toBe('0')
    expect(Number(run.outputs['newest-snapshot-age-hours'])).toBeLessThan(0.1)
    expect(run.summary).toContain('No problems found')

    // The RPO as an input: a snapshot older than max-age fails the step, with an annotation.
    const old = await project.run(['backup', '--time', '2026-01-01T00:00:00Z'])
    expect(old.code).toBe(0)
    const late = await runAction(project.dir, { command: 'check', 'max-age': '1h' })
    expect(late.code).toBe(0) // the recent backup above is within the hour
    const prune = await runAction(project.dir, { command: 'prune', 'dry-run': 'true' })
    expect(prune.code).toBe(1) // no retention policy configured: refused, nothing removed
    expect(prune.stdout).toContain('no retention policy is configured')
  })

  it('restore-tests a snapshot: outputs, summary table, and a failed step when a chunk is bad', async () => {
    project = await createProject()
    expect((await project.run(['init'])).code).toBe(0)
    expect((await project.run(['backup'])).code).toBe(0)
    const passed = await runAction(project.dir, { command: 'restore-test', key: 'keys/reader.key' })
    expect(passed.code, passed.stdout + passed.stderr).toBe(0)
    expect(passed.outputs.passed).toBe('true')
    expect(Number(passed.outputs['rto-seconds'])).toBeGreaterThanOrEqual(0)
    expect(passed.outputs['report-path']).toMatch(/kluis-restore-test\.json$/)
    expect(passed.summary).toContain('kluis restore-test: passed')
    expect(passed.summary).toContain('app-db')

    const chunks = join(project.dir, 'backup-repo', 'chunks')
    const [prefix] = await readdir(chunks)
    const [chunk] = await readdir(join(chunks, prefix ?? ''))
    const path = join(chunks, prefix ?? '', chunk ?? '')
    const bytes = await readFile(path)
    bytes[bytes.length - 20] = (bytes[bytes.length - 20] as number) ^ 1
    await writeFile(path, bytes)
    const failed = await runAction(project.dir, { command: 'restore-test', key: 'keys/reader.key' })
    expect(failed.code).toBe(1)
    expect(failed.outputs.passed).toBe('false')
    expect(failed.summary).toContain('FAILED')
    expect(failed.stdout).toContain(`chunks/${prefix}/${chunk}`)
  })

  it('fails a check that finds problems, after writing the count and the summary', async () => {
    project = await createProject()
    expect((await project.run(['init'])).code).toBe(0)
    expect((await project.run(['backup'])).code).toBe(0)
    const chunks = join(project.dir, 'backup-repo', 'chunks')
    const [prefix] = await readdir(chunks)
    const [chunk] = await readdir(join(chunks, prefix as string))
    await rm(join(chunks, prefix as string, chunk as string))

    const run = await runAction(project.dir, { command: 'check' })

    expect(run.code).toBe(1)
    expect(Number(run.outputs.problems)).toBeGreaterThan(0)
    expect(run.summary).toContain(`chunks/${prefix}/${chunk}: is missing`)
    expect(run.stdout).toMatch(/^::error::check found \d+ problem\(s\)%0Ahint: /m)
  })

  it('fails on an unknown command, quoting it and listing the valid ones', async () => {
    project = await createProject()
    const run = await runAction(project.dir, { command: 'explode' })
    expect(run.code).toBe(1)
    expect(run.stdout).toContain(
      "::error::Invalid command 'explode'. Expected one of: backup, snapshots, restore, check, prune, restore-test.",
    )
    expect(run.outputs).toEqual({})
  })

  it('fails when the command input is missing (required: true is not enforced)', async () => {
    project = await createProject()
    const run = await runAction(project.dir, {})
    expect(run.code).toBe(1)
    expect(run.stdout).toContain('::error::Input required and not supplied: command')
  })

  it('fails clearly when the configuration file does not exist', async () => {
    project = await createProject()
    const run = await runAction(project.dir, { command: 'snapshots', config: 'missing.yml' })
    expect(run.code).toBe(1)
    const error = run.stdout.split('\n').find((line) => line.startsWith('::error::'))
    expect(error).toContain('configuration file missing.yml does not exist')
    expect(error).toContain('%0Ahint: ') // the hint on its own line
    // Reported after workflow commands are back on, or the runner would not see it.
    const token = /^::stop-commands::(.+)$/m.exec(run.stdout)?.[1]
    expect(run.stdout.indexOf(`::${token}::`)).toBeLessThan(run.stdout.indexOf('::error::'))
    expect(run.stdout).not.toMatch(/\n\s+at /) // no stack trace
  })

  it('masks database passwords from source URLs and the restore target before logging', async () => {
    const password = 'p@ss:w/rd%+ é'
    const encoded = encodeURIComponent(password)
    project = await createProject({
      config: `${exampleConfig}  - { name: app, type: postgres, url: "\${DATABASE_URL}" }\n`,
    })
    expect((await project.run(['init'])).code).toBe(0)
    const run = await runAction(
      project.dir,
      { command: 'backup', source: 'app' },
      // Nothing listens on port 1: the backup fails after the masks were registered.
      {
        DATABASE_URL: `postgres://kluis:${encoded}@127.0.0.1:1/app`,
        AZURE_STORAGE_CONNECTION_STRING:
          'DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5IG9mIHRoZSBhY2NvdW50;EndpointSuffix=core.windows.net',
      },
    )
    // The account key alone is masked too, not only the whole connection string.
    expect(run.stdout).toContain('::add-mask::a2V5IG9mIHRoZSBhY2NvdW50\n')
    expect(run.code).toBe(1)
    // Workflow command data escapes '%' as '%25'; the runner undoes it.
    const masks = run.stdout
      .split('\n')
      .filter((line) => line.startsWith('::add-mask::'))
      .map((line) => line.replaceAll('%25', '%'))
    expect(masks).toEqual(
      expect.arrayContaining([`::add-mask::${password}`, `::add-mask::${encoded}`]),
    )
    // Registered while workflow commands are still on, or the runner would ignore them.
    expect(run.stdout.indexOf(`::add-mask::${encoded.replaceAll('%', '%25')}`)).toBeLessThan(
      run.stdout.indexOf('::stop-commands::'),
    )
    expect(run.stdout).toContain('::error::')
    const logged = run.stdout.replace(/^::add-mask::.*$/gm, '')
    expect(logged).not.toContain(password)
    expect(logged).not.toContain(encoded)

    const restore = await runAction(project.dir, {
      command: 'restore',
      target: `postgres://kluis:target%21secret@127.0.0.1:1/restored`,
      key: 'keys/reader.key',
    })
    expect(restore.stdout).toContain('::add-mask::target!secret')
  })

  it("the post step removes the main step's temporary files, also after a cancelled run", async () => {
    project = await createProject()
    expect((await project.run(['init'])).code).toBe(0)
    const runnerTemp = await mkdtemp(join(tmpdir(), 'kluis-runner-post-'))
    try {
      const run = await runAction(project.dir, { command: 'backup' }, { RUNNER_TEMP: runnerTemp })
      expect(run.code, run.stdout).toBe(0)
      const scratch = run.state.scratch ?? ''
      expect(scratch.startsWith(runnerTemp)).toBe(true)
      // What a cancelled run leaves: a database copy in the scratch folder.
      await writeFile(join(scratch, 'app.db'), 'a copy of the database')
      const post = await runPostStep({ scratch })
      expect(post.code, post.stdout + post.stderr).toBe(0)
      expect(post.stdout).toContain("removed kluis's temporary files")
      expect(existsSync(scratch)).toBe(false)
      expect(existsSync(runnerTemp)).toBe(true)
    } finally {
      await rm(runnerTemp, { recursive: true, force: true })
    }
  })

  it("keeps its temporary files in a folder of its own inside the workflow's KLUIS_TMPDIR", async () => {
    project = await createProject()
    expect((await project.run(['init'])).code).toBe(0)
    const workflowTemp = await mkdtemp(join(tmpdir(), 'kluis-workflow-tmp-'))
    try {
      await writeFile(join(workflowTemp, 'belongs-to-the-workflow'), 'keep me')
      const run = await runAction(
        project.dir,
        { command: 'backup' },
        { KLUIS_TMPDIR: workflowTemp },
      )
      expect(run.code, run.stdout).toBe(0)
      const scratch = run.state.scratch ?? ''
      expect(scratch.startsWith(`${workflowTemp}/kluis-`)).toBe(true)
      const post = await runPostStep({ scratch })
      expect(post.code, post.stdout + post.stderr).toBe(0)
      expect(existsSync(scratch)).toBe(false)
      expect(await readdir(workflowTemp)).toEqual(['belongs-to-the-workflow'])
    } finally {
      await rm(workflowTemp, { recursive: true, force: true })
    }
  })

  it('does not let a file name inject workflow commands into the log', async () => {
    // Source names cannot hold ':' (the configuration rejects them), but file names can hold
    // anything. A name that is not UTF-8 is skipped with a warning that quotes it.
    project = await createProject()
    expect((await project.run(['init'])).code).toBe(0)
    const name = Buffer.concat([
      Buffer.from('\n::error::injected by a file name\n'),
      Buffer.from([0xff]),
    ])
    await writeFile(
      Buffer.concat([Buffer.from(join(project.dir, 'data', 'uploads', '/')), name]),
      'x',
    )

    const run = await runAction(project.dir, { command: 'backup' })

    expect(run.code, run.stdout + run.stderr).toBe(0)
    const lines = run.stdout.split('\n')
    const token = /^::stop-commands::([0-9a-f]{32})$/.exec(
      lines.find((l) => l.startsWith('::stop-commands::')) ?? '',
    )?.[1]
    expect(token).toBeDefined()
    const stopped = lines.indexOf(`::stop-commands::${token}`)
    const resumed = lines.indexOf(`::${token}::`)
    const injected = lines.indexOf('::error::injected by a file name')
    expect(stopped).toBeGreaterThanOrEqual(0)
    expect(injected).toBeGreaterThan(stopped)
    expect(resumed).toBeGreaterThan(injected)
    // Outside the stopped stretch the only commands are ours; the warning arrives escaped.
    const outside = [...lines.slice(0, stopped), ...lines.slice(resumed + 1)]
    expect(outside.filter((line) => line.startsWith('::error::'))).toEqual([])
    expect(outside).toContainEqual(
      expect.stringMatching(/^::warning::source 'uploads': %0A::error::injected by a file name%0A/),
    )
  })
})

describe('action.yml', () => {
  it('runs the bundle on node24', () => {
    expect(actionYml.runs.using).toBe('node24')
    expect(existsSync(join(root, actionYml.runs.main))).toBe(true)
  })

  it('declares every input the action reads, and reads every input it declares', async () => {
    const source = await readFile(join(root, 'src', 'action', 'inputs.ts'), 'utf8')
    const read = [
      ...source.matchAll(/(?:getInput|getBooleanInput|booleanInput)\(\s*'([^']+)'/g),
    ].map((match) => match[1])
    expect(new Set(read)).toEqual(new Set(Object.keys(actionYml.inputs)))
    expect(actionYml.inputs.command?.required).toBe(true)
  })

  it('declares the outputs', () => {
    for (const name of [
      'snapshot-id',
      'bytes-added',
      'bytes-total',
      'duration-seconds',
      'problems',
    ]) {
      expect(actionYml.outputs[name]?.description, name).toBeTruthy()
    }
  })
})
