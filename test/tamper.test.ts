import { readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createProject, type Project } from './support/project.js'

/**
 * Nothing is trusted from storage: a flipped byte in any object makes restore and
 * `check --read-data` fail with the object's name, and restore writes nothing to the target.
 */
describe('tampered repository objects', () => {
  let project: Project
  let snapshotId: string
  const repo = () => join(project.dir, 'backup-repo')

  beforeAll(async () => {
    project = await createProject()
    expect((await project.run(['init'])).code).toBe(0)
    snapshotId = JSON.parse((await project.run(['backup', '--json'])).stdout).snapshotId
  })
  afterAll(() => project.cleanup())

  /** Flips one byte of `object` for the duration of `body`. */
  async function withFlippedByte(
    object: string,
    at: (length: number) => number,
    body: () => Promise<void>,
  ) {
    const path = join(repo(), object)
    const original = await readFile(path)
    const changed = Buffer.from(original)
    const position = at(changed.length)
    changed[position] = (changed[position] as number) ^ 0x01
    await writeFile(path, changed)
    try {
      await body()
    } finally {
      await writeFile(path, original)
    }
  }

  async function expectRestoreAndCheckToName(object: string, target: string) {
    const restored = await project.run(['restore', '--target', target, '--key', 'keys/reader.key'])
    expect(restored.code).toBe(1)
    expect(restored.stderr).toContain(object)
    await expect(stat(join(project.dir, target))).rejects.toThrow() // nothing reached the target
    expect(
      (await readdir(project.dir)).filter((name) => name.startsWith('.kluis-restore')),
    ).toEqual([])
    const checked = await project.run(['check', '--read-data', '--key', 'keys/reader.key'])
    expect(checked.code).toBe(1)
    expect(checked.stdout).toContain(object)
  }

  async function chunkOf(source: string): Promise<string> {
    const index = await readFile(join(repo(), 'snapshots', `${snapshotId}.json.asc`), 'utf8')
    const json = JSON.parse(index.slice(index.indexOf('{'), index.lastIndexOf('}') + 1))
    const id = json.sources.find((s: { name: string }) => s.name === source).streams[0].chunks[0][0]
    return `chunks/${id.slice(0, 2)}/${id}`
  }

  it('the repository is sound before tampering', async () => {
    const checked = await project.run(['check', '--read-data', '--key', 'keys/reader.key'])
    expect(checked.stdout).toContain('no problems found')
    expect(checked.code).toBe(0)
  })

  it('a chunk with a flipped byte in its encrypted data', async () => {
    const chunk = await chunkOf('uploads')
    await withFlippedByte(
      chunk,
      (n) => n - 30,
      () => expectRestoreAndCheckToName(chunk, 'out-chunk'),
    )
  })

  it('a chunk with a flipped byte in its session key packet', async () => {
    const chunk = await chunkOf('app-db')
    await withFlippedByte(
      chunk,
      () => 40,
      () => expectRestoreAndCheckToName(chunk, 'out-pkesk'),
    )
  })

  it('a chunk swapped for another chunk', async () => {
    const first = await chunkOf('app-db')
    const second = await chunkOf('uploads')
    const original = await readFile(join(repo(), first))
    await writeFile(join(repo(), first), await readFile(join(repo(), second)))
    try {
      await expectRestoreAndCheckToName(first, 'out-swapped')
    } finally {
      await writeFile(join(repo(), first), original)
    }
  })

  it('an index with a flipped byte in its JSON', async () => {
    const index = `snapshots/${snapshotId}.json.asc`
    const text = await readFile(join(repo(), index), 'utf8')
    const hostAt = text.indexOf('"host"') + 3
    await withFlippedByte(
      index,
      () => hostAt,
      async () => {
        await expectRestoreAndCheckToName(index, 'out-index')
        const bySnapshot = await project.run([
          'restore',
          '--snapshot',
          snapshotId,
          '--target',
          'out-index2',
          '--key',
          'keys/reader.key',
        ])
        expect(bySnapshot.code).toBe(1)
        expect(bySnapshot.stderr).toContain(`${index}: is not signed by the trusted writer key`)
      },
    )
  })

  it('a manifest with a flipped byte', async () => {
    const manifest = `snapshots/${snapshotId}.default.manifest.pgp`
    await withFlippedByte(
      manifest,
      (n) => n - 5,
      () => expectRestoreAndCheckToName(manifest, 'out-manifest'),
    )
  })

  it('an index planted by someone without the writer key is ignored by snapshots and reported by check', async () => {
    const planted = join(repo(), 'snapshots', `${'f'.repeat(32)}.json.asc`)
    const real = await readFile(join(repo(), 'snapshots', `${snapshotId}.json.asc`), 'utf8')
    await writeFile(planted, real.replace(snapshotId, 'f'.repeat(32)))
    try {
      const listed = await project.run(['snapshots', '--json'])
      expect(listed.code).toBe(0)
      expect(JSON.parse(listed.stdout).map((s: { id: string }) => s.id)).toEqual([snapshotId])
      expect(listed.stderr).toContain(`snapshots/${'f'.repeat(32)}.json.asc`)
      const checked = await project.run(['check'])
      expect(checked.code).toBe(1)
      expect(checked.stdout).toContain(
        `snapshots/${'f'.repeat(32)}.json.asc: is not signed by the trusted writer key`,
      )
    } finally {
      await rm(planted)
    }
  })

  it('a missing chunk is named by check without --read-data', async () => {
    const chunk = await chunkOf('uploads')
    const data = await readFile(join(repo(), chunk))
    await rm(join(repo(), chunk))
    try {
      const checked = await project.run(['check'])
      expect(checked.code).toBe(1)
      expect(checked.stdout).toContain(`${chunk}: is missing`)
    } finally {
      await writeFile(join(repo(), chunk), data)
    }
  })

  it('an index copied from another repository of the same writer is refused', async () => {
    const config = (await readFile(join(project.dir, 'kluis.yml'), 'utf8')).replace(
      './backup-repo',
      './other-repo',
    )
    await writeFile(join(project.dir, 'other.yml'), config)
    expect((await project.run(['init', '--config', 'other.yml'])).code).toBe(0)
    const copied = JSON.parse(
      (await project.run(['backup', '--json', '--config', 'other.yml'])).stdout,
    ).snapshotId
    for (const object of [`${copied}.json.asc`, `${copied}.default.manifest.pgp`]) {
      await writeFile(
        join(repo(), 'snapshots', object),
        await readFile(join(project.dir, 'other-repo', 'snapshots', object)),
      )
    }
    try {
      const restored = await project.run([
        'restore',
        '--snapshot',
        copied,
        '--target',
        'out-copied',
        '--key',
        'keys/reader.key',
      ])
      expect(restored.code).toBe(1)
      expect(restored.stderr).toContain(
        `snapshots/${copied}.json.asc: belongs to another repository`,
      )
    } finally {
      await rm(join(repo(), 'snapshots', `${copied}.json.asc`))
      await rm(join(repo(), 'snapshots', `${copied}.default.manifest.pgp`))
    }
  })

  it('config.json with chunker parameters that make no sense is refused', async () => {
    const path = join(repo(), 'config.json')
    const original = await readFile(path, 'utf8')
    await writeFile(path, original.replace(/"avg": \d+/, '"avg": 1000000'))
    try {
      const run = await project.run(['snapshots'])
      expect(run.code).toBe(1)
      expect(run.stderr).toContain(
        'config.json: has invalid chunker parameters: avg must be a power of two',
      )
    } finally {
      await writeFile(path, original)
    }
  })
})
