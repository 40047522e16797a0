import { spawnSync } from 'node:child_process'
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createProject, type Project, requireTool } from './support/project.js'

/** `keys generate --rsa`: RSA-4096 keys, for teams whose policy asks for RSA. */
describe('RSA-4096 keys', () => {
  let project: Project
  let gnupghome: string
  beforeAll(async () => {
    requireTool('gpg', 'gnupg')
    project = await createProject()
    const generated = await project.run(['keys', 'generate', '--out', 'keys', '--rsa', '--force'])
    expect(generated.code).toBe(0)
    expect((await project.run(['init'])).code).toBe(0)
    gnupghome = await mkdtemp(join(tmpdir(), 'kluis-gpg-'))
  })
  afterAll(async () => {
    spawnSync('gpgconf', ['--kill', 'gpg-agent'], { env: { ...process.env, GNUPGHOME: gnupghome } })
    await rm(gnupghome, { recursive: true, force: true })
    await project.cleanup()
  })

  it('are RSA 4096, back up and restore, and gpg decrypts the chunks', async () => {
    const env = { ...process.env, GNUPGHOME: gnupghome }
    const imported = spawnSync('gpg', ['--batch', '--import', 'keys/reader.key'], {
      cwd: project.dir,
      env,
      encoding: 'utf8',
    })
    expect(imported.status, imported.stderr).toBe(0)
    const listed = spawnSync('gpg', ['--batch', '--with-colons', '--list-keys'], {
      env,
      encoding: 'utf8',
    })
    const algorithms = listed.stdout
      .split('\n')
      .filter((line) => /^(pub|sub):/.test(line))
      .map((line) => line.split(':').slice(2, 4).join('/'))
    expect(algorithms).toEqual(['4096/1', '4096/1']) // key length / algorithm 1 = RSA

    expect((await project.run(['backup'])).code).toBe(0)
    const restored = await project.run(['restore', '--target', 'out', '--key', 'keys/reader.key'])
    expect(restored.code).toBe(0)
    expect(await readFile(join(project.dir, 'out', 'uploads', 'docs', 'readme.txt'), 'utf8')).toBe(
      'hello uploads\n',
    )

    const chunksDir = join(project.dir, 'backup-repo', 'chunks')
    const [prefix] = await readdir(chunksDir)
    const [chunk] = await readdir(join(chunksDir, prefix as string))
    const decrypted = spawnSync(
      'gpg',
      ['--batch', '--decrypt', join(chunksDir, prefix as string, chunk as string)],
      { env },
    )
    expect(decrypted.status, decrypted.stderr.toString()).toBe(0)
    // The plaintext of a chunk is a zstd frame (magic 28 b5 2f fd).
    expect(decrypted.stdout.subarray(0, 4).toString('hex')).toBe('28b52ffd')
  })
})
