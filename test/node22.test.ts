import { spawnSync } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createProject, type Project, sqlite } from './support/project.js'

/**
 * The action runs on Node 24, but `npx kluis` on a laptop may meet Node 22.16 (the oldest we
 * support): the bundled CLI must back up and restore there too. Node 22.16 comes from the npm
 * registry, like the project's Node 24.
 */
const cli = new URL('../dist/cli.js', import.meta.url).pathname

function onNode22(cwd: string, args: string[]) {
  return spawnSync('npm', ['exec', '--yes', '--package=node@22.16.0', '--', 'node', cli, ...args], {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, npm_config_update_notifier: 'false' },
  })
}

describe('the CLI on Node 22.16', () => {
  let project: Project
  beforeAll(async () => {
    project = await createProject()
  })
  afterAll(() => project?.cleanup())

  it('backs up and restores byte for byte, without warnings', { timeout: 180_000 }, async () => {
    const version = onNode22(project.dir, ['--version'])
    expect(version.stdout).toContain('kluis')
    for (const args of [
      ['init'],
      ['backup'],
      ['restore', '--target', 'out', '--key', 'keys/reader.key'],
    ]) {
      const run = onNode22(project.dir, [...args, '--config', 'kluis.yml'])
      expect(run.status, run.stderr).toBe(0)
      expect(run.stderr).not.toMatch(/Warning/)
    }
    expect(await readFile(join(project.dir, 'out', 'uploads', 'docs', 'readme.txt'), 'utf8')).toBe(
      'hello uploads\n',
    )
    expect(
      sqlite(join(project.dir, 'out', 'app-db', 'app.db'), ['SELECT count(*) FROM users']).trim(),
    ).toBe('2000')
  })
})
