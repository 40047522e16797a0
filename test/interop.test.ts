import { execSync } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { test } from 'vitest'
import { createProject } from './support/project.js'

test('explore', async () => {
  const p = await createProject()
  console.log(await p.run(['init']))
  const b = await p.run(['backup', '--json'])
  console.log(b.stdout)
  console.log(execSync(`cd ${p.dir} && find backup-repo -type f | xargs ls -la`).toString())
  const id = JSON.parse(b.stdout).snapshotId
  console.log(await readFile(join(p.dir, 'backup-repo', 'snapshots', `${id}.json.asc`), 'utf8'))
  console.log(await readFile(join(p.dir, 'backup-repo', 'config.json'), 'utf8'))
  console.log(execSync(`cp -r ${p.dir} /tmp/explore-project`).toString())
})
