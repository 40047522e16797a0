/**
 * Writes a directory tree as a POSIX tar stream (ustar headers, PAX extended headers where
 * ustar cannot hold a value). Entries are walked depth-first in byte order of their names and
 * carry no atime/ctime/owner names, so an unchanged tree gives a byte-identical stream, which
 * keeps the chunker's deduplication effective.
 */
import { createHash } from 'node:crypto'
import type { Stats } from 'node:fs'
import { constants } from 'node:fs'
import { type FileHandle, lstat, open, readdir, readlink, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { SourceError } from '../../core/errors.js'
import { compileExcludes } from './glob.js'
import type { TarFact } from './types.js'

export interface TarDirectoryOptions {
  /** Exclude patterns, see glob.ts. */
  exclude?: string[]
  onWarning?: (message: string) => void
  /** Receives one fact per entry written, in stream order. */
  facts: TarFact[]
}

const BLOCK = 512
/** Size of the buffers we yield and of file reads: big enough to keep per-yield costs low. */
const PIECE = 1 << 20
/** Largest value of an 11-digit octal field (size, mtime): 8 GiB - 1. */
const MAX_OCTAL_11 = 0o77777777777
/** Largest value of a 7-digit octal field (mode, uid, gid). */
const MAX_OCTAL_7 = 0o7777777

interface HeaderFields {
  path: string
  type: '0' | '2' | '5' | 'x'
  mode: number
  uid: number
  gid: number
  size: number
  mtime: number
  linkpath?: string
}

export async function* tarDirectory(
  root: string,
  options: TarDirectoryOptions,
): AsyncGenerator<Buffer> {
  const warn = options.onWarning ?? (() => {})
  const excluded = compileExcludes(options.exclude ?? [])
  await assertDirectory(root)
  const out = new Output()
  // Pending entries, last on top; children are pushed in reverse so they pop in sorted order.
  const stack = ((await listDirectory(root, '', warn)) ?? []).reverse()
  while (stack.length > 0) {
    const path = stack.pop() as string
    const absolute = join(root, path)
    const stats = await lstatOrSkip(absolute, path, warn)
    if (!stats || excluded(path, stats.isDirectory())) continue
    if (stats.isDirectory()) {
      const children = await listDirectory(absolute, `${path}/`, warn)
      if (!children) continue
      writeDirectory(out, path, stats, options.facts)
      for (let i = children.length - 1; i >= 0; i--) stack.push(children[i] as string)
    } else if (stats.isFile()) {
      yield* writeFile(out, absolute, path, stats, options.facts, warn)
    } else if (stats.isSymbolicLink()) {
      await writeSymlink(out, absolute, path, stats, options.facts, warn)
    } else {
      warn(`${path}: skipped, sockets, FIFOs and devices are not backed up`)
    }
    if (out.full) yield out.take()
  }
  out.push(Buffer.alloc(2 * BLOCK)) // end-of-archive marker
  yield out.take()
}

/** Collects small buffers so that we yield about PIECE bytes at a time. */
class Output {
  /** Bytes pushed so far: the stream offset of the next byte. */
  offset = 0
  private parts: Buffer[] = []
  private size = 0

  push(buffer: Buffer): void {
    this.parts.push(buffer)
    this.size += buffer.length
    this.offset += buffer.length
  }

  get full(): boolean {
    return this.size >= PIECE
  }

  take(): Buffer {
    const result =
      this.parts.length === 1 ? (this.parts[0] as Buffer) : Buffer.concat(this.parts, this.size)
    this.parts = []
    this.size = 0
    return result
  }
}

async function assertDirectory(root: string): Promise<void> {
  let stats: Stats
  try {
    stats = await stat(root)
  } catch (error) {
    throw new SourceError(`cannot read directory ${root}: ${codeOf(error)}`, 'Check the path.')
  }
  if (!stats.isDirectory()) throw new SourceError(`${root} is not a directory`)
}

/**
 * Child paths of a directory (prefix + name), sorted by the UTF-8 bytes of their names; undefined
 * when the directory vanished. Names that are not valid UTF-8 cannot be stored faithfully as a
 * PAX path, so they are skipped with a warning.
 */
async function listDirectory(
  absolute: string,
  prefix: string,
  warn: (message: string) => void,
): Promise<string[] | undefined> {
  let names: Buffer[]
  try {
    names = await readdir(absolute, { encoding: 'buffer' })
  } catch (error) {
    if (codeOf(error) === 'ENOENT' && prefix !== '') {
      warn(`${prefix}: skipped, the directory vanished while reading`)
      return undefined
    }
    throw new SourceError(
      `cannot read directory ${absolute}: ${codeOf(error)}`,
      'Give the backup user read and execute permission on it, or exclude it.',
    )
  }
  names.sort(Buffer.compare)
  const paths: string[] = []
  for (const raw of names) {
    const name = raw.toString('utf8')
    if (Buffer.from(name, 'utf8').equals(raw)) paths.push(prefix + name)
    else warn(`${prefix}${name}: skipped, the name is not valid UTF-8`)
  }
  return paths
}

async function lstatOrSkip(
  absolute: string,
  path: string,
  warn: (message: string) => void,
): Promise<Stats | undefined> {
  try {
    return await lstat(absolute)
  } catch (error) {
    if (codeOf(error) !== 'ENOENT') throw readError(path, error)
    warn(`${path}: skipped, it vanished while reading`)
    return undefined
  }
}

function writeDirectory(out: Output, path: string, stats: Stats, facts: TarFact[]): void {
  const fields = headerFields(`${path}/`, '5', stats, 0)
  facts.push({
    path,
    type: 'directory',
    mode: fields.mode,
    mtime: fields.mtime,
    size: 0,
    offset: out.offset,
  })
  out.push(encodeHeaders(fields))
}

async function writeSymlink(
  out: Output,
  absolute: string,
  path: string,
  stats: Stats,
  facts: TarFact[],
  warn: (message: string) => void,
): Promise<void> {
  let target: string
  try {
    target = await readlink(absolute)
  } catch (error) {
    if (codeOf(error) !== 'ENOENT') throw readError(path, error)
    warn(`${path}: skipped, it vanished while reading`)
    return
  }
  const fields = { ...headerFields(path, '2', stats, 0), linkpath: target }
  facts.push({
    path,
    type: 'symlink',
    mode: fields.mode,
    mtime: fields.mtime,
    size: 0,
    target,
    offset: out.offset,
  })
  out.push(encodeHeaders(fields))
}

/** Header and content of a regular file; hard links are stored as separate files. */
async function* writeFile(
  out: Output,
  absolute: string,
  path: string,
  stats: Stats,
  facts: TarFact[],
  warn: (message: string) => void,
): AsyncGenerator<Buffer> {
  const handle = await openOrSkip(absolute, path, warn)
  if (!handle) return
  try {
    if (!(await handle.stat()).isFile()) {
      warn(`${path}: skipped, it changed type while reading`)
      return
    }
    // The size from lstat is what the header promises; later growth is not read.
    const size = stats.size
    const fields = headerFields(path, '0', stats, size)
    out.push(encodeHeaders(fields))
    const offset = out.offset
    const hash = createHash('sha256')
    let shrank = false
    for (let left = size; left > 0; ) {
      const piece = Buffer.allocUnsafe(Math.min(left, PIECE))
      if ((await readFully(handle, piece)) < piece.length) shrank = true
      hash.update(piece)
      out.push(piece)
      left -= piece.length
      if (out.full) yield out.take()
    }
    if (shrank) warn(`${path}: changed while reading; the missing end is stored as zero bytes`)
    const padding = paddingOf(size)
    if (padding > 0) out.push(Buffer.alloc(padding))
    const sha256 = hash.digest('hex')
    facts.push({ path, type: 'file', mode: fields.mode, mtime: fields.mtime, size, sha256, offset })
  } finally {
    await handle.close()
  }
}

async function openOrSkip(
  absolute: string,
  path: string,
  warn: (message: string) => void,
): Promise<FileHandle | undefined> {
  try {
    // In case the file was replaced since lstat: O_NOFOLLOW does not read a symlink's target,
    // O_NONBLOCK does not hang on a FIFO.
    return await open(absolute, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK)
  } catch (error) {
    if (codeOf(error) !== 'ENOENT') throw readError(path, error)
    warn(`${path}: skipped, it vanished while reading`)
    return undefined
  }
}

/** Fills `buffer` from the file's current position; zero-fills what the file no longer has. */
async function readFully(handle: FileHandle, buffer: Buffer): Promise<number> {
  let filled = 0
  while (filled < buffer.length) {
    const { bytesRead } = await handle.read(buffer, filled, buffer.length - filled, null)
    if (bytesRead === 0) break
    filled += bytesRead
  }
  buffer.fill(0, filled)
  return filled
}

function headerFields(path: string, type: HeaderFields['type'], stats: Stats, size: number) {
  return {
    path,
    type,
    mode: stats.mode & 0o7777,
    uid: stats.uid,
    gid: stats.gid,
    size,
    mtime: Math.floor(stats.mtimeMs / 1000),
  } satisfies HeaderFields
}

/** The ustar header, preceded by a PAX header for whatever ustar cannot hold. */
function encodeHeaders(fields: HeaderFields): Buffer {
  const records: [string, string][] = []
  if (!fitsUstarName(fields.path)) records.push(['path', fields.path])
  if (fields.linkpath !== undefined && !fitsUstarName(fields.linkpath)) {
    records.push(['linkpath', fields.linkpath])
  }
  if (fields.size > MAX_OCTAL_11) records.push(['size', String(fields.size)])
  if (fields.mtime < 0 || fields.mtime > MAX_OCTAL_11) records.push(['mtime', String(fields.mtime)])
  if (fields.uid > MAX_OCTAL_7) records.push(['uid', String(fields.uid)])
  if (fields.gid > MAX_OCTAL_7) records.push(['gid', String(fields.gid)])
  const header = ustarHeader(fields)
  return records.length === 0 ? header : Buffer.concat([paxHeader(records), header])
}

/** ASCII and at most 100 bytes: fits the ustar name field without the prefix split. */
function fitsUstarName(name: string): boolean {
  return name.length <= 100 && Buffer.byteLength(name, 'utf8') === name.length
}

function ustarHeader(fields: HeaderFields): Buffer {
  const header = Buffer.alloc(BLOCK)
  header.write(ustarFallbackName(fields.path), 0, 100, 'latin1')
  writeNumber(header, 100, 8, fields.mode)
  writeNumber(header, 108, 8, fields.uid)
  writeNumber(header, 116, 8, fields.gid)
  writeNumber(header, 124, 12, fields.size)
  writeNumber(header, 136, 12, Math.max(0, fields.mtime))
  header.write(fields.type, 156, 1, 'latin1')
  if (fields.linkpath !== undefined) {
    header.write(ustarFallbackName(fields.linkpath), 157, 100, 'latin1')
  }
  header.write('ustar\x0000', 257, 8, 'latin1')
  writeNumber(header, 329, 8, 0) // devmajor
  writeNumber(header, 337, 8, 0) // devminor
  writeChecksum(header)
  return header
}

/** What goes in a ustar name field when the real name is in the PAX header. */
function ustarFallbackName(name: string): string {
  if (fitsUstarName(name)) return name
  const ascii = name.replace(/[^\x20-\x7e]/g, '_')
  return name.endsWith('/') ? `${ascii.slice(0, -1).slice(0, 99)}/` : ascii.slice(0, 100)
}

/** A PAX 'x' header block followed by its records, padded to whole blocks. */
function paxHeader(records: [string, string][]): Buffer {
  const body = Buffer.from(records.map(([key, value]) => paxRecord(key, value)).join(''), 'utf8')
  const header = ustarHeader({
    path: 'PaxHeader', // fixed name keeps the stream deterministic
    type: 'x',
    mode: 0o644,
    uid: 0,
    gid: 0,
    size: body.length,
    mtime: 0,
  })
  return Buffer.concat([header, body, Buffer.alloc(paddingOf(body.length))])
}

/** "<length> <key>=<value>\n", where length counts the whole record including its own digits. */
function paxRecord(key: string, value: string): string {
  const rest = ` ${key}=${value}\n`
  const restLength = Buffer.byteLength(rest, 'utf8')
  let length = restLength + 1
  while (String(length).length + restLength !== length) length = String(length).length + restLength
  return `${length}${rest}`
}

/** Octal with a terminating NUL; values too big for it use GNU base-256 (also in PAX). */
function writeNumber(header: Buffer, offset: number, length: number, value: number): void {
  const octal = value.toString(8)
  if (octal.length < length) {
    header.write(`${octal.padStart(length - 1, '0')}\0`, offset, length, 'latin1')
    return
  }
  header[offset] = 0x80
  let rest = value
  for (let i = offset + length - 1; i > offset; i--) {
    header[i] = rest % 256
    rest = Math.floor(rest / 256)
  }
}

function writeChecksum(header: Buffer): void {
  header.fill(0x20, 148, 156)
  let sum = 0
  for (const byte of header) sum += byte
  header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'latin1')
}

function paddingOf(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK
}

function readError(path: string, error: unknown): SourceError {
  return new SourceError(
    `cannot read ${path}: ${codeOf(error)}`,
    'Give the backup user read permission on it, or exclude it.',
  )
}

function codeOf(error: unknown): string {
  const code = (error as NodeJS.ErrnoException | undefined)?.code
  return code ?? (error instanceof Error ? error.message : String(error))
}
