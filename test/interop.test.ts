/**
 * The repository format read with standard tools only (gpg, sq, zstd, tar), as docs/format.md
 * describes it and scripts/emergency-restore.sh uses it. Nothing here decodes objects with
 * kluis code: the index is the text gpg verified, chunks are what gpg/sq and zstd return.
 */
import { type SpawnSyncReturns, spawnSync } from 'node:child_process'
import { createHash, createHmac, randomBytes } from 'node:crypto'
import {
  chmod,
  cp,
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  readlink,
  rm,
  symlink,
  writeFile,
} from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { createProject, type Project, requireTool, sqlite } from './support/project.js'

const script = fileURLToPath(new URL('../scripts/emergency-restore.sh', import.meta.url))

/** The example configuration with the database in a key group of its own. */
const config = `repository: file://./backup-repo
keys:
  readers: [keys/reader.asc]
  writer: keys/writer.key
  writer-public: keys/writer.asc
  groups:
    database: { readers: [keys/reader.asc] }
sources:
  - { name: app-db,  type: sqlite, path: data/app.db, group: database }
  - { name: uploads, type: files,  path: data/uploads, exclude: ["*.tmp"] }
`

/** The parts of format version 1 this test reads, written down from docs/format.md. */
type ChunkRef = [id: string, size: number, stored: number]
interface Index {
  kluis: string
  version: number
  id: string
  writer: string
  manifests: Record<string, { size: number; sha256: string }>
  sources: Array<{
    name: string
    type: string
    group: string
    streams: Array<{ name: string; size: number; chunks: ChunkRef[] }>
  }>
}
interface Manifest {
  kluis: string
  snapshot: string
  group: string
  sources: Array<{ name: string; streams: Array<{ name: string; size: number; sha256: string }> }>
}

describe('the repository read with gpg, sq, zstd and tar', () => {
  let project: Project
  let gnupghome: string
  let env: NodeJS.ProcessEnv
  let repo: string
  let id: string
  let index: Index
  /** Per key group, as gpg decrypted it. */
  const manifests = new Map<string, Manifest>()
  let writerFingerprint: string

  /** Runs a tool with an argv array; fails with its stderr unless it exits 0. */
  function run(command: string, args: string[], input?: Buffer): Buffer {
    const result = spawn(command, args, input)
    if (result.status !== 0) {
      throw new Error(`${command} ${args.join(' ')} exited ${result.status}: ${result.stderr}`)
    }
    return result.stdout
  }

  function spawn(command: string, args: string[], input?: Buffer): SpawnSyncReturns<Buffer> {
    return spawnSync(command, args, {
      cwd: project.dir,
      env,
      maxBuffer: 256 * 1024 * 1024,
      ...(input ? { input } : {}),
    })
  }

  const chunkPath = (chunk: string) => join(repo, 'chunks', chunk.slice(0, 2), chunk)
  const gpgDecrypt = (file: string) => run('gpg', ['--batch', '--quiet', '--decrypt', file])
  const unzstd = (frame: Buffer) => run('zstd', ['-d', '-q', '-c'], frame)
  const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex')

  function stream(source: string): Index['sources'][number]['streams'][number] {
    const found = index.sources.find((s) => s.name === source)?.streams[0]
    if (!found) throw new Error(`the index has no source ${source}`)
    return found
  }

  const groupOf = (source: string) => index.sources.find((s) => s.name === source)?.group ?? ''
  const manifestPath = (group: string) => join(repo, 'snapshots', `${id}.${group}.manifest.pgp`)

  function manifestStream(source: string): { size: number; sha256: string } {
    const found = manifests.get(groupOf(source))?.sources.find((s) => s.name === source)?.streams[0]
    if (!found) throw new Error(`the manifest has no source ${source}`)
    return found
  }

  /** A stream as gpg + zstd give it: every chunk in index order, decrypted and decompressed. */
  function streamWithTools(source: string): Buffer {
    return Buffer.concat(
      stream(source).chunks.map(([chunk, size]) => {
        const plaintext = unzstd(gpgDecrypt(chunkPath(chunk)))
        expect(plaintext.length).toBe(size)
        return plaintext
      }),
    )
  }

  beforeAll(async () => {
    requireTool('gpg', 'gpg')
    requireTool('gpgconf', 'gpgconf')
    requireTool('sq', 'sq')
    requireTool('zstd', 'zstd')
    requireTool('tar', 'tar')
    requireTool('bash', 'bash')
    requireTool('sha256sum', 'coreutils')

    project = await createProject({ config })
    const data = join(project.dir, 'data')
    // Big enough for several chunks per stream (min 512 KiB, avg 1 MiB), so order matters.
    sqlite(join(data, 'app.db'), [
      "INSERT INTO users(name, bio) SELECT 'more ' || value, randomblob(300) FROM generate_series(1, 15000)",
    ])
    const uploads = join(data, 'uploads')
    await writeFile(join(uploads, 'big.bin'), randomBytes(3 * 1024 * 1024 + 123))
    await writeFile(join(uploads, 'empty'), '')
    await writeFile(join(uploads, 'run.sh'), '#!/bin/sh\necho hi\n')
    await chmod(join(uploads, 'run.sh'), 0o750)
    const deep = join(uploads, 'a-directory-with-a-long-name'.repeat(3), 'ünïcødé')
    await mkdir(deep, { recursive: true })
    await writeFile(join(deep, `${'x'.repeat(80)}.txt`), 'needs a PAX path record\n')
    await symlink('docs/readme.txt', join(uploads, 'link'))

    expect((await project.run(['init'])).code).toBe(0)
    const backup = await project.run(['backup', '--json'])
    expect(backup.code, backup.stderr).toBe(0)
    id = (JSON.parse(backup.stdout) as { snapshotId: string }).snapshotId
    const restored = await project.run(['restore', '--target', 'out', '--key', 'keys/reader.key'])
    expect(restored.code, restored.stderr).toBe(0)
    repo = join(project.dir, 'backup-repo')

    gnupghome = await mkdtemp(join(tmpdir(), 'kluis-gnupg-'))
    env = { ...process.env, GNUPGHOME: gnupghome, LC_ALL: 'C' }
    run('gpg', ['--batch', '--quiet', '--import', 'keys/reader.key', 'keys/writer.asc'])
    const colons = run('gpg', ['--batch', '--with-colons', '--show-keys', 'keys/writer.asc'])
    writerFingerprint = /^fpr:+([0-9A-F]{40}):/m.exec(colons.toString())?.[1] ?? ''
    expect(writerFingerprint).toMatch(/^[0-9A-F]{40}$/)

    // The index as gpg verified it (a reader never parses the unverified file).
    const verified = gpgDecrypt(join(repo, 'snapshots', `${id}.json.asc`))
    index = JSON.parse(verified.toString('utf8')) as Index
    for (const group of Object.keys(index.manifests)) {
      manifests.set(group, JSON.parse(gpgDecrypt(manifestPath(group)).toString('utf8')) as Manifest)
    }
  })

  afterAll(async () => {
    if (gnupghome) {
      spawnSync('gpgconf', ['--kill', 'gpg-agent'], { env })
      await rm(gnupghome, { recursive: true, force: true })
    }
    await project?.cleanup()
  })

  test('(a) gpg + zstd decrypt every app-db chunk; together they are what kluis restores', async () => {
    const chunks = stream('app-db').chunks
    expect(chunks.length).toBeGreaterThan(1)
    const first = chunks[0] as ChunkRef
    expect((await lstat(chunkPath(first[0]))).size).toBe(first[2])

    const database = streamWithTools('app-db')
    expect(database.equals(await readFile(join(project.dir, 'out', 'app-db', 'app.db')))).toBe(true)
    expect(database.length).toBe(stream('app-db').size)
    expect({ size: database.length, sha256: sha256(database) }).toEqual({
      size: manifestStream('app-db').size,
      sha256: manifestStream('app-db').sha256,
    })
  })

  test('(b) sq decrypts the same chunk (and the manifest, checking the writer signature)', () => {
    const [chunk] = stream('app-db').chunks[0] as ChunkRef
    const bySq = run('sq', ['decrypt', '--recipient-key', 'keys/reader.key', chunkPath(chunk)])
    expect(unzstd(bySq).equals(unzstd(gpgDecrypt(chunkPath(chunk))))).toBe(true)

    const manifestBySq = run('sq', [
      'decrypt',
      '--recipient-key',
      'keys/reader.key',
      '--signer-cert',
      'keys/writer.asc',
      manifestPath('database'),
    ])
    expect(JSON.parse(manifestBySq.toString('utf8'))).toEqual(manifests.get('database'))
  })

  test('(c) gpg --verify accepts the index as the writer’s, and rejects it after one byte changed', async () => {
    const file = join(repo, 'snapshots', `${id}.json.asc`)
    const good = spawn('gpg', ['--batch', '--status-fd', '1', '--verify', file])
    expect(good.status, good.stderr.toString()).toBe(0)
    expect(good.stdout.toString()).toMatch(
      new RegExp(`^\\[GNUPG:\\] VALIDSIG ${writerFingerprint} .* ${writerFingerprint}$`, 'm'),
    )
    expect(index.writer).toBe(writerFingerprint)
    expect(index.id).toBe(id)

    const armored = await readFile(file)
    const at = armored.indexOf('"size": ') + '"size": '.length
    const tampered = Buffer.from(armored)
    tampered[at] = tampered[at] === 0x39 ? 0x38 : (tampered[at] as number) + 1 // another digit
    const copy = join(gnupghome, 'tampered.json.asc')
    await writeFile(copy, tampered)
    const bad = spawn('gpg', ['--batch', '--status-fd', '1', '--verify', copy])
    expect(bad.status).not.toBe(0)
    expect(bad.stdout.toString()).toMatch(/^\[GNUPG:\] BADSIG /m)
    expect(bad.stdout.toString()).not.toMatch(/VALIDSIG/)
  })

  test('(d) gpg decrypts each manifest: signed by the writer, JSON naming the snapshot', async () => {
    expect(Object.keys(index.manifests).sort()).toEqual(['database', 'default'])
    const names: Record<string, string[]> = { database: ['app-db'], default: ['uploads'] }
    for (const [group, recorded] of Object.entries(index.manifests)) {
      const file = manifestPath(group)
      const sealed = await readFile(file)
      expect({ size: sealed.length, sha256: sha256(sealed) }).toEqual(recorded)
      const result = spawn('gpg', ['--batch', '--status-fd', '2', '--decrypt', file])
      expect(result.status).toBe(0)
      expect(result.stderr.toString()).toMatch(new RegExp(`VALIDSIG ${writerFingerprint} `))
      const parsed = JSON.parse(result.stdout.toString('utf8')) as Manifest
      expect(parsed).toMatchObject({ kluis: 'snapshot-manifest', snapshot: id, group })
      expect(parsed.sources.map((s) => s.name)).toEqual(names[group])
    }
  })

  test('(e) emergency-restore.sh restores both streams as kluis does', async () => {
    const work = await mkdtemp(join(gnupghome, 'emergency-'))
    const restore = (source: string, target: string, extra: NodeJS.ProcessEnv = {}, shell = 'sh') =>
      spawnSync(shell, [script, repo, source, target, id], {
        env: { ...env, KLUIS_WRITER_FINGERPRINT: writerFingerprint, ...extra },
        encoding: 'utf8',
      })

    const expected = await readFile(join(project.dir, 'out', 'app-db', 'app.db'))
    for (const shell of ['sh', 'bash']) {
      const database = join(work, `app-${shell}.db`)
      const db = restore('app-db', database, {}, shell)
      expect(db.status, db.stderr).toBe(0)
      expect((await readFile(database)).equals(expected)).toBe(true)
    }

    // A files source is unpacked into the target folder.
    const tree = join(work, 'uploads')
    const files = restore('uploads', tree)
    expect(files.status, files.stderr).toBe(0)
    const kluisTree = await describeTree(join(project.dir, 'out', 'uploads'))
    expect(await describeTree(tree)).toEqual(kluisTree)
    expect(kluisTree.map((entry) => entry.path)).toContain('big.bin')

    const wrongWriter = restore('uploads', join(work, 'never'), {
      KLUIS_WRITER_FINGERPRINT: '0'.repeat(40),
    })
    expect(wrongWriter.status).toBe(1)
    expect(wrongWriter.stderr).toMatch(/not by the trusted writer/)
  })

  test('(e) emergency-restore.sh refuses a modified or swapped chunk and writes nothing', async () => {
    const [first, second] = stream('app-db').chunks as [ChunkRef, ChunkRef]
    const cases: Array<[string, (copy: string) => Promise<void>, RegExp]> = [
      [
        'flipped byte',
        async (copy) => {
          const file = join(copy, 'chunks', first[0].slice(0, 2), first[0])
          const bytes = await readFile(file)
          bytes[bytes.length - 100] = (bytes[bytes.length - 100] as number) ^ 1
          await writeFile(file, bytes)
        },
        /gpg cannot decrypt it, or it was modified/,
      ],
      [
        'swapped chunk',
        async (copy) => {
          const from = join(copy, 'chunks', first[0].slice(0, 2), first[0])
          await cp(from, join(copy, 'chunks', second[0].slice(0, 2), second[0]))
        },
        /bytes, the index says|does not match the signed manifest/,
      ],
    ]
    for (const [name, damage, message] of cases) {
      const copy = await mkdtemp(join(gnupghome, 'repo-'))
      await cp(repo, copy, { recursive: true })
      await damage(copy)
      const output = join(copy, 'app.db')
      const result = spawnSync('sh', [script, copy, 'app-db', output, id], {
        env,
        encoding: 'utf8',
      })
      expect(result.status, name).toBe(1)
      expect(result.stderr, name).toMatch(message)
      expect(await readdir(copy), name).not.toContain('app.db')
      expect(await readdir(copy), name).not.toContain('app.db.partial')
    }
  })

  test('docs/format.md: dedup keys, chunk ids and chunk boundaries, recomputed independently', async () => {
    const repositoryConfig = JSON.parse(await readFile(join(repo, 'config.json'), 'utf8')) as {
      chunker: { algorithm: string; min: number; avg: number; max: number }
    }
    expect(repositoryConfig.chunker.algorithm).toBe('fastcdc-gear32')
    for (const source of ['app-db', 'uploads']) {
      const group = groupOf(source)
      const sealed = join(repo, 'keys', `${group}.pgp`)
      const verified = spawn('gpg', ['--batch', '--status-fd', '2', '--decrypt', sealed])
      expect(verified.status).toBe(0)
      expect(verified.stderr.toString()).toMatch(new RegExp(`VALIDSIG ${writerFingerprint} `))
      const payload = JSON.parse(verified.stdout.toString('utf8')) as Record<string, string>
      expect(Object.keys(payload)).toEqual(['kluis', 'group', 'key'])
      expect(payload).toMatchObject({ kluis: 'dedup-key', group })
      const dedupKey = Buffer.from(payload.key as string, 'base64')
      expect(dedupKey.length).toBe(32)
      const gear = Array.from({ length: 256 }, (_, byte) =>
        createHmac('sha256', dedupKey).update(`kluis gear ${byte}`).digest().readUInt32BE(0),
      )

      const data = streamWithTools(source)
      const refs = stream(source).chunks
      expect(refs.length).toBeGreaterThan(1)
      expect(chunkSizes(data, gear, repositoryConfig.chunker)).toEqual(refs.map(([, size]) => size))
      let offset = 0
      for (const [chunk, size] of refs) {
        const plaintext = data.subarray(offset, offset + size)
        expect(createHmac('sha256', dedupKey).update(plaintext).digest('hex')).toBe(chunk)
        offset += size
      }
    }
  })

  test('(e) emergency-restore.sh takes the newest signed snapshot when none is named', async () => {
    // A newer snapshot with changed data, and a planted index that claims to be newer still.
    const sqliteFile = join(project.dir, 'data', 'app.db')
    sqlite(sqliteFile, ["INSERT INTO users(name, bio) VALUES ('newest', x'00')"])
    const second = await project.run(['backup', '--json'])
    expect(second.code, second.stderr).toBe(0)
    const newest = (JSON.parse(second.stdout) as { snapshotId: string }).snapshotId
    const planted = (await readFile(join(repo, 'snapshots', `${newest}.json.asc`), 'utf8')).replace(
      /"time": "[^"]+"/,
      '"time": "2099-01-01T00:00:00.000Z"',
    )
    await writeFile(join(repo, 'snapshots', `${'d'.repeat(32)}.json.asc`), planted)
    try {
      const work = await mkdtemp(join(gnupghome, 'newest-'))
      const target = join(work, 'app.db')
      const result = spawnSync('sh', [script, repo, 'app-db', target], {
        env: { ...env, KLUIS_WRITER_FINGERPRINT: writerFingerprint },
        encoding: 'utf8',
      })
      expect(result.status, result.stderr).toBe(0)
      expect(result.stderr).toContain(`the newest snapshot of app-db is ${newest}`)
      expect(result.stderr).toContain(`skipping ${'d'.repeat(32)}`)
      expect(sqlite(target, ["SELECT count(*) FROM users WHERE name = 'newest'"]).trim()).toBe('1')
    } finally {
      await rm(join(repo, 'snapshots', `${'d'.repeat(32)}.json.asc`))
    }
  })
})

/**
 * The chunker exactly as docs/format.md states it, written without bit tricks: the hash is
 * h = (2h + gear[byte]) mod 2^32 from offset `min` of each chunk on, and a chunk ends after the
 * byte at offset i when the top n bits of h are zero (h < 2^(32-n)), n = log2(avg) + 2 while
 * i < avg and log2(avg) - 2 after; at max bytes, or at the end of the stream, it ends anyway.
 */
function chunkSizes(
  data: Buffer,
  gear: number[],
  { min, avg, max }: { min: number; avg: number; max: number },
): number[] {
  const bits = Math.log2(avg)
  const strictLimit = 2 ** (32 - (bits + 2))
  const looseLimit = 2 ** (32 - (bits - 2))
  const sizes: number[] = []
  for (let start = 0; start < data.length; ) {
    const end = Math.min(data.length - start, max)
    let size = end
    if (end > min) {
      let h = 0
      for (let i = min; i < end; i++) {
        h = (h * 2 + (gear[data[start + i] as number] as number)) % 2 ** 32
        if (h < (i < avg ? strictLimit : looseLimit)) {
          size = i + 1
          break
        }
      }
    }
    sizes.push(size)
    start += size
  }
  return sizes
}

interface TreeEntry {
  path: string
  type: string
  mode: number
  content?: string
  mtime?: number
}

/** Every entry below `root` with type, permission bits, content (hashed) or link target. */
async function describeTree(root: string, prefix = ''): Promise<TreeEntry[]> {
  const entries: TreeEntry[] = []
  for (const name of (await readdir(join(root, prefix))).sort()) {
    const path = prefix ? `${prefix}/${name}` : name
    const absolute = join(root, path)
    const info = await lstat(absolute)
    const mode = info.mode & 0o7777
    if (info.isDirectory()) {
      entries.push({ path, type: 'directory', mode })
      entries.push(...(await describeTree(root, path)))
    } else if (info.isSymbolicLink()) {
      entries.push({ path, type: 'symlink', mode, content: await readlink(absolute) })
    } else {
      const content = createHash('sha256')
        .update(await readFile(absolute))
        .digest('hex')
      entries.push({ path, type: 'file', mode, content, mtime: Math.floor(info.mtimeMs / 1000) })
    }
  }
  return entries
}
