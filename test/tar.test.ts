import { spawn } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import {
  appendFile,
  chmod,
  lstat,
  lutimes,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  readlink,
  rm,
  symlink,
  truncate,
  unlink,
  utimes,
  writeFile,
} from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { Readable } from 'node:stream'
import { afterAll, describe, expect, it } from 'vitest'
import { SourceError } from '../src/core/errors.js'
import { compileExcludes } from '../src/sources/tar/glob.js'
import { extractTar } from '../src/sources/tar/reader.js'
import type { TarFact } from '../src/sources/tar/types.js'
import { tarDirectory } from '../src/sources/tar/writer.js'

const temps: string[] = []
afterAll(async () => {
  await Promise.all(temps.map((dir) => rm(dir, { recursive: true, force: true })))
})

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'kluis-tar-'))
  temps.push(dir)
  return dir
}

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex')

async function concat(stream: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = []
  for await (const part of stream) parts.push(part)
  return Buffer.concat(parts)
}

/** Re-chunks a buffer at an odd size so entries straddle chunk boundaries. */
async function* chunked(data: Buffer, size = 7_777): AsyncGenerator<Buffer> {
  for (let i = 0; i < data.length; i += size) yield data.subarray(i, i + size)
}

async function tarOf(root: string, exclude: string[] = []) {
  const facts: TarFact[] = []
  const warnings: string[] = []
  const stream = await concat(
    tarDirectory(root, { exclude, facts, onWarning: (m) => warnings.push(m) }),
  )
  return { stream, facts, warnings }
}

async function extract(stream: AsyncIterable<Buffer>, dest: string) {
  const warnings: string[] = []
  const facts = await extractTar(stream, dest, { onWarning: (m) => warnings.push(m) })
  return { facts, warnings }
}

const MTIME = 1_600_000_000

/** The test tree; outside-pointing links are listed in OUTSIDE_LINKS. */
async function makeTree(root: string): Promise<void> {
  const long = 'l'.repeat(150)
  const files: [string, Buffer | string, number][] = [
    ['a/hello.txt', 'hello\n', 0o644],
    ['a/empty.txt', '', 0o644],
    ['a/b/random.bin', randomBytes(5 * 1024 * 1024), 0o644],
    ['a/b/c/deep.txt', 'deep', 0o640],
    ['bin/run.sh', '#!/bin/sh\necho hi\n', 0o755],
    ['secret.txt', 'secret', 0o600],
    ['setuid-bin', 'x', 0o4755],
    ['ñandú/日本語 file.txt', 'unicode', 0o644],
    [`long/${long}`, 'long name', 0o644],
  ]
  for (const dir of ['a/b/c', 'bin', 'empty', 'ñandú', 'long', 'sticky']) {
    await mkdir(join(root, dir), { recursive: true })
  }
  for (const [path, content, mode] of files) {
    await writeFile(join(root, path), content)
    await chmod(join(root, path), mode)
  }
  await chmod(join(root, 'sticky'), 0o1777)
  await symlink('b/random.bin', join(root, 'a/link-to-random'))
  await symlink('../a/hello.txt', join(root, 'bin/hello-link'))
  await symlink('t'.repeat(120), join(root, 'long-target')) // dangling, inside, needs PAX linkpath
  await symlink('../../etc/passwd', join(root, 'escape'))
  await symlink('/etc/passwd', join(root, 'abs'))
  await setTimes(root)
}

const OUTSIDE_LINKS = ['escape', 'abs']

/** Distinct whole-second mtimes everywhere; directories last so children do not disturb them. */
async function setTimes(root: string): Promise<void> {
  const entries = (await readdir(root, { recursive: true })).sort()
  let i = 0
  const directories: string[] = []
  for (const path of entries) {
    const absolute = join(root, path)
    const stats = await lstat(absolute)
    const time = MTIME + i++ * 61
    if (stats.isDirectory()) directories.push(path)
    else if (stats.isSymbolicLink()) await lutimes(absolute, time, time)
    else await utimes(absolute, time, time)
  }
  for (const path of directories.reverse()) {
    const time = MTIME + i++ * 61
    await utimes(join(root, path), time, time)
  }
}

interface Snapshot {
  type: string
  mode?: number
  mtime: number
  sha256?: string
  target?: string
}

/** What a tree holds, for comparing two trees. */
async function snapshot(root: string): Promise<Record<string, Snapshot>> {
  const result: Record<string, Snapshot> = {}
  for (const path of (await readdir(root, { recursive: true })).sort()) {
    const absolute = join(root, path)
    const stats = await lstat(absolute)
    const mtime = Math.floor(stats.mtimeMs / 1000)
    if (stats.isSymbolicLink()) {
      result[path] = { type: 'symlink', mtime, target: await readlink(absolute) }
    } else if (stats.isDirectory()) {
      result[path] = { type: 'directory', mode: stats.mode & 0o7777, mtime }
    } else {
      const content = await readFile(absolute)
      result[path] = { type: 'file', mode: stats.mode & 0o7777, mtime, sha256: sha256(content) }
    }
  }
  return result
}

function without(tree: Record<string, Snapshot>, paths: string[]) {
  return Object.fromEntries(Object.entries(tree).filter(([path]) => !paths.includes(path)))
}

async function exists(path: string): Promise<boolean> {
  return lstat(path).then(
    () => true,
    () => false,
  )
}

async function run(command: string, args: string[], input?: Buffer) {
  const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] })
  const stdout = concat(child.stdout)
  const stderr = concat(child.stderr)
  if (input) Readable.from(chunked(input, 65_536)).pipe(child.stdin)
  else child.stdin.end()
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve))
  return { code, stdout: await stdout, stderr: (await stderr).toString() }
}

describe('tar round trip', () => {
  it('restores content, modes, mtimes and symlinks; refuses outside links', async () => {
    const source = await tempDir()
    await makeTree(source)
    const { stream, facts, warnings } = await tarOf(source)
    expect(warnings).toEqual([])
    expect(stream.length % 512).toBe(0)

    const dest = await tempDir()
    const restored = await extract(chunked(stream), dest)

    expect(await snapshot(dest)).toEqual(without(await snapshot(source), OUTSIDE_LINKS))
    for (const link of OUTSIDE_LINKS) {
      expect(await exists(join(dest, link))).toBe(false)
      expect(restored.warnings.some((w) => w.includes(link))).toBe(true)
    }
    expect(restored.facts).toEqual(facts.filter((f) => !OUTSIDE_LINKS.includes(f.path)))
  })

  it('lists entries in byte order with directories before their contents', async () => {
    const source = await tempDir()
    await makeTree(source)
    const { facts } = await tarOf(source)
    const paths = facts.map((f) => f.path)
    expect(paths.indexOf('a')).toBeLessThan(paths.indexOf('a/b'))
    expect(paths.indexOf('a/b')).toBeLessThan(paths.indexOf('a/b/random.bin'))
    expect(paths).toContain('empty')
    expect(paths).not.toContain('')
    const top = paths.filter((p) => !p.includes('/'))
    expect(top).toEqual([...top].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y))))
  })

  it('gives byte-identical streams for an unchanged tree', async () => {
    const source = await tempDir()
    await makeTree(source)
    const first = await tarOf(source)
    const second = await tarOf(source)
    expect(second.stream.equals(first.stream)).toBe(true)
    expect(second.facts).toEqual(first.facts)
  })

  it('reports facts whose hashes and offsets match the files and the stream', async () => {
    const source = await tempDir()
    await makeTree(source)
    const { stream, facts } = await tarOf(source)
    const files = facts.filter((f) => f.type === 'file')
    expect(files.length).toBe(9)
    for (const fact of files) {
      const content = await readFile(join(source, fact.path))
      expect(fact.size).toBe(content.length)
      expect(fact.sha256).toBe(sha256(content))
      expect(stream.subarray(fact.offset, fact.offset + fact.size).equals(content)).toBe(true)
    }
    for (const fact of facts.filter((f) => f.type !== 'file')) {
      expect(fact.offset % 512).toBe(0)
    }
    expect(facts.find((f) => f.path === 'a/link-to-random')?.target).toBe('b/random.bin')
    expect(facts.find((f) => f.path === 'setuid-bin')?.mode).toBe(0o4755)
    expect(facts.find((f) => f.path === 'sticky')?.mode).toBe(0o1777)
  })
})

describe('many small files', () => {
  it('round-trips a wide tree', async () => {
    const source = await tempDir()
    for (let d = 0; d < 10; d++) {
      await mkdir(join(source, `d${d}`))
      for (let f = 0; f < 40; f++) {
        const path = join(source, `d${d}`, `f${f}`)
        await writeFile(path, randomBytes((d * 40 + f) * 97))
        await chmod(path, f % 2 ? 0o640 : 0o755)
      }
    }
    await setTimes(source)
    const { stream, facts } = await tarOf(source)
    const dest = await tempDir()
    const restored = await extract(chunked(stream, 100_000), dest)
    expect(await snapshot(dest)).toEqual(await snapshot(source))
    expect(restored.facts).toEqual(facts)
  })
})

describe('exclude patterns', () => {
  it('matches like gitignore', () => {
    const excluded = compileExcludes(['*.tmp', 'cache/', 'sub/**/x.log', '/top.txt'])
    expect(excluded('a.tmp', false)).toBe(true)
    expect(excluded('deep/er/a.tmp', false)).toBe(true)
    expect(excluded('a.tmp.keep', false)).toBe(false)
    expect(excluded('cache', true)).toBe(true)
    expect(excluded('x/cache', true)).toBe(true)
    expect(excluded('cache', false)).toBe(false)
    expect(excluded('cache/inner.txt', false)).toBe(true)
    expect(excluded('sub/x.log', false)).toBe(true)
    expect(excluded('sub/a/b/x.log', false)).toBe(true)
    expect(excluded('other/sub/x.log', false)).toBe(false)
    expect(excluded('top.txt', false)).toBe(true)
    expect(excluded('d/top.txt', false)).toBe(false)
    const star = compileExcludes(['a/*.log', 'file?.txt', '[ab].md'])
    expect(star('a/x.log', false)).toBe(true)
    expect(star('a/b/x.log', false)).toBe(false)
    expect(star('file1.txt', false)).toBe(true)
    expect(star('file10.txt', false)).toBe(false)
    expect(star('b.md', false)).toBe(true)
    expect(star('c.md', false)).toBe(false)
  })

  it('leaves excluded entries out of the stream', async () => {
    const source = await tempDir()
    const paths = [
      'keep.txt',
      'x.tmp',
      'd/y.tmp',
      'd/cache', // a file: 'cache/' matches directories only
      'cache/inside.txt',
      'd/cache2/cache/inside.txt',
      'sub/x.log',
      'sub/a/b/x.log',
      'sub/a/keep.log',
      'other/x.log',
    ]
    for (const path of paths) {
      await mkdir(dirname(join(source, path)), { recursive: true })
      await writeFile(join(source, path), path)
    }
    const { facts } = await tarOf(source, ['*.tmp', 'cache/', 'sub/**/x.log'])
    expect(facts.map((f) => f.path).sort()).toEqual(
      [
        'd',
        'd/cache',
        'd/cache2',
        'keep.txt',
        'other',
        'other/x.log',
        'sub',
        'sub/a',
        'sub/a/b',
        'sub/a/keep.log',
      ].sort(),
    )
  })
})

describe('GNU tar compatibility', () => {
  it('GNU tar lists and extracts our stream', async () => {
    const source = await tempDir()
    await makeTree(source)
    const { stream, facts } = await tarOf(source)

    const list = await run('tar', ['--quoting-style=literal', '-tvf', '-'], stream)
    expect(list.stderr).toBe('')
    expect(list.code).toBe(0)
    const lines = list.stdout.toString('utf8').trimEnd().split('\n')
    expect(lines.length).toBe(facts.length)
    expect(lines.some((line) => line.includes('ñandú/日本語 file.txt'))).toBe(true)

    const dest = await tempDir()
    const extracted = await run('tar', ['-xf', '-', '-C', dest], stream)
    expect(extracted.stderr).toBe('')
    expect(extracted.code).toBe(0)
    expect(await snapshot(dest)).toEqual(await snapshot(source))
  })

  it('extracts a PAX tar made by GNU tar', async () => {
    const source = await tempDir()
    await makeTree(source)
    const made = await run('tar', ['--format=pax', '-cf', '-', '-C', source, '.'])
    expect(made.stderr).toBe('')
    expect(made.code).toBe(0)

    const dest = await tempDir()
    const { facts, warnings } = await extract(chunked(made.stdout, 10_000), dest)
    expect(await snapshot(dest)).toEqual(without(await snapshot(source), OUTSIDE_LINKS))
    expect(warnings.length).toBe(OUTSIDE_LINKS.length)
    const random = facts.find((f) => f.path === 'a/b/random.bin')
    expect(random?.sha256).toBe(sha256(await readFile(join(source, 'a/b/random.bin'))))
  })

  it('extracts a GNU-format tar with long names', async () => {
    const source = await tempDir()
    await makeTree(source)
    const made = await run('tar', ['--format=gnu', '-cf', '-', '-C', source, '.'])
    expect(made.code).toBe(0)
    const dest = await tempDir()
    await extract(chunked(made.stdout), dest)
    expect(await snapshot(dest)).toEqual(without(await snapshot(source), OUTSIDE_LINKS))
  })
})

/** A hand-made ustar header, independent of the writer. */
function header(name: string, type: string, size = 0, linkname = ''): Buffer {
  const block = Buffer.alloc(512)
  block.write(name, 0, 100, 'utf8')
  block.write('0000644\0', 100, 'latin1')
  block.write('0000000\0', 108, 'latin1')
  block.write('0000000\0', 116, 'latin1')
  block.write(`${size.toString(8).padStart(11, '0')}\0`, 124, 'latin1')
  block.write(`${MTIME.toString(8).padStart(11, '0')}\0`, 136, 'latin1')
  block.write(type, 156, 'latin1')
  block.write(linkname, 157, 100, 'utf8')
  block.write('ustar\u000000', 257, 'latin1')
  block.fill(0x20, 148, 156)
  let sum = 0
  for (const byte of block) sum += byte
  block.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1')
  return block
}

function fileEntry(name: string, content: string): Buffer {
  const data = Buffer.from(content)
  const padded = Buffer.alloc(Math.ceil(data.length / 512) * 512)
  data.copy(padded)
  return Buffer.concat([header(name, '0', data.length), padded])
}

const END = Buffer.alloc(1024)

describe('hostile archives', () => {
  /** dest inside a parent directory, so that escapes land where we can look. */
  async function sandbox() {
    const parent = await tempDir()
    const dest = join(parent, 'dest')
    await mkdir(dest)
    return { parent, dest }
  }

  it('refuses a path with ..', async () => {
    const { parent, dest } = await sandbox()
    const archive = Buffer.concat([fileEntry('../evil', 'pwned'), END])
    await expect(extract(chunked(archive), dest)).rejects.toThrow(/evil.*'\.\.'/)
    await expect(extract(chunked(archive), dest)).rejects.toBeInstanceOf(SourceError)
    expect(await exists(join(parent, 'evil'))).toBe(false)
    const hidden = Buffer.concat([fileEntry('./a/../../evil', 'pwned'), END])
    await expect(extract(chunked(hidden), dest)).rejects.toThrow(SourceError)
    expect(await exists(join(parent, 'evil'))).toBe(false)
  })

  it('refuses an absolute path', async () => {
    const { parent, dest } = await sandbox()
    const target = join(parent, 'abs-evil')
    const archive = Buffer.concat([fileEntry(target, 'pwned'), END])
    await expect(extract(chunked(archive), dest)).rejects.toThrow(/absolute/)
    expect(await exists(target)).toBe(false)
  })

  it('refuses to write through a symlink', async () => {
    const { parent, dest } = await sandbox()
    const archive = Buffer.concat([header('link', '2', 0, '..'), fileEntry('link/evil', 'x'), END])
    await expect(extract(chunked(archive), dest)).rejects.toThrow(/through the symlink link/)
    expect(await exists(join(parent, 'evil'))).toBe(false)
    expect(await exists(join(dest, 'link'))).toBe(false)
  })

  it('does not create symlinks that escape through other symlinks', async () => {
    const { dest } = await sandbox()
    // b looks harmless until a exists: a/.. is then dest's parent.
    const archive = Buffer.concat([
      header('b', '2', 0, 'a/..'),
      header('a', '2', 0, '.'),
      header('ok', '2', 0, 'a'),
      END,
    ])
    const { warnings, facts } = await extract(chunked(archive), dest)
    expect(await exists(join(dest, 'b'))).toBe(false)
    expect(await readlink(join(dest, 'a'))).toBe('.')
    expect(await readlink(join(dest, 'ok'))).toBe('a')
    expect(warnings.some((w) => w.startsWith('b:'))).toBe(true)
    expect(facts.map((f) => f.path)).toEqual(['a', 'ok'])
  })

  it('lets a later entry for the same path replace the earlier one', async () => {
    const { dest } = await sandbox()
    const archive = Buffer.concat([fileEntry('x', 'one'), fileEntry('x', 'two'), END])
    const { facts } = await extract(chunked(archive), dest)
    expect(await readFile(join(dest, 'x'), 'utf8')).toBe('two')
    expect(facts.map((f) => [f.path, f.sha256])).toEqual([['x', sha256(Buffer.from('two'))]])
  })

  it('refuses an entry below a file', async () => {
    const { dest } = await sandbox()
    const archive = Buffer.concat([fileEntry('x', 'one'), fileEntry('x/y', 'two'), END])
    await expect(extract(chunked(archive), dest)).rejects.toThrow(/x is not a directory/)
  })

  it('links hard links inside dest only', async () => {
    const { dest } = await sandbox()
    const archive = Buffer.concat([
      fileEntry('file', 'content'),
      header('hard', '1', 0, 'file'),
      header('outside', '1', 0, '../../etc/passwd'),
      END,
    ])
    const { warnings } = await extract(chunked(archive), dest)
    expect(await readFile(join(dest, 'hard'), 'utf8')).toBe('content')
    expect(await exists(join(dest, 'outside'))).toBe(false)
    expect(warnings.some((w) => w.includes('outside'))).toBe(true)
  })
})

describe('damaged streams', () => {
  it('throws on a truncated stream', async () => {
    const source = await tempDir()
    await makeTree(source)
    const { stream } = await tarOf(source)
    const middle = stream.subarray(0, Math.floor(stream.length / 2))
    await expect(extract(chunked(middle), await tempDir())).rejects.toThrow(/truncated/)
    const noEnd = stream.subarray(0, stream.length - 1024)
    await expect(extract(chunked(noEnd), await tempDir())).rejects.toThrow(/truncated/)
  })

  it('throws on something that is not tar', async () => {
    const garbage = randomBytes(4096)
    await expect(extract(chunked(garbage), await tempDir())).rejects.toThrow(SourceError)
  })
})

describe('changes while reading', () => {
  const MiB = 1024 * 1024

  it('pads a file that shrinks and ignores growth', async () => {
    const source = await tempDir()
    await writeFile(join(source, 'a-shrinks'), randomBytes(3 * MiB))
    await writeFile(join(source, 'b-grows'), randomBytes(3 * MiB))
    const facts: TarFact[] = []
    const warnings: string[] = []
    const parts: Buffer[] = []
    const tar = tarDirectory(source, { facts, onWarning: (m) => warnings.push(m) })
    for await (const part of tar) {
      if (parts.length === 0) {
        await truncate(join(source, 'a-shrinks'), 1.5 * MiB)
        await appendFile(join(source, 'b-grows'), randomBytes(MiB))
      }
      parts.push(part)
    }
    const stream = Buffer.concat(parts)
    expect(warnings).toEqual([expect.stringMatching(/^a-shrinks: changed while reading/)])
    const [shrunk, grown] = facts
    expect(shrunk?.size).toBe(3 * MiB)
    const tail = stream.subarray((shrunk?.offset ?? 0) + 1.5 * MiB, (shrunk?.offset ?? 0) + 3 * MiB)
    expect(tail.every((byte) => byte === 0)).toBe(true)
    expect(grown?.size).toBe(3 * MiB)

    const dest = await tempDir()
    await extract(chunked(stream), dest)
    expect((await lstat(join(dest, 'b-grows'))).size).toBe(3 * MiB)
  })

  it('skips a file that vanished', async () => {
    const source = await tempDir()
    await writeFile(join(source, 'a'), randomBytes(3 * MiB))
    await writeFile(join(source, 'b'), randomBytes(3 * MiB))
    const facts: TarFact[] = []
    const warnings: string[] = []
    const tar = tarDirectory(source, { facts, onWarning: (m) => warnings.push(m) })
    let first = true
    for await (const _ of tar) {
      if (first) await unlink(join(source, 'b'))
      first = false
    }
    expect(facts.map((f) => f.path)).toEqual(['a'])
    expect(warnings).toEqual(['b: skipped, it vanished while reading'])
  })

  it.skipIf(process.getuid?.() === 0)('throws on a directory it cannot read', async () => {
    const source = await tempDir()
    await mkdir(join(source, 'locked'))
    await chmod(join(source, 'locked'), 0)
    await expect(tarOf(source)).rejects.toThrow(/cannot read directory/)
    await chmod(join(source, 'locked'), 0o755)
  })
})
