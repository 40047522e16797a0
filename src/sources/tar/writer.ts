/**
 * Writes a directory tree as a POSIX tar stream (ustar headers, PAX extended headers where
 * ustar cannot hold a value). Entries are walked depth-first in byte order of their names and
 * carry no atime/ctime/owner names, so an unchanged tree gives a byte-identical stream, which
 * keeps the chunker's deduplication effective.
 */
import { createHash } from 'node:crypto'
import type { Dirent, Stats } from 'node:fs'
import { constants } from 'node:fs'
import { type FileHandle, lstat, open, readdir, readlink, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { SourceError } from '../../core/errors.js'
import { compileExcludes, type ExcludeMatcher } from './glob.js'
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
/** Files up to this size are read whole, ahead of time; larger ones are streamed in pieces. */
const SMALL_FILE = 256 << 10
/** Entries prepared concurrently; with SMALL_FILE this bounds read-ahead memory to 4 MiB. */
const READ_AHEAD = 16
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
  const facts = options.facts
  await assertDirectory(root)
  const out = new Output()
  const found = walk(root, compileExcludes(options.exclude ?? []), warn)
  for await (const entry of readAhead(found)) {
    if (entry.kind === 'skip') warn(entry.warning)
    else if (entry.kind === 'directory') writeDirectory(out, entry.path, entry.stats, facts)
    else if (entry.kind === 'symlink') writeSymlink(out, entry, facts)
    else if (entry.content) writeSmallFile(out, entry, entry.content, facts, warn)
    else yield* writeLargeFile(out, entry, facts, warn)
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
    throw new SourceError(`cannot read directory ${root}: ${codeOf(error)}`, 'check the path')
  }
  if (!stats.isDirectory()) throw new SourceError(`${root} is not a directory`)
}

// ---------------------------------------------------------------------------------------------
// Walking the tree

interface Found {
  path: string
  absolute: string
  isDirectory: boolean
}

/**
 * Paths below root, depth-first, each directory's names sorted by their UTF-8 bytes. A directory
 * is listed before it is returned, so one that vanished is skipped rather than half-written.
 */
async function* walk(
  root: string,
  excluded: ExcludeMatcher,
  warn: (message: string) => void,
): AsyncGenerator<Found> {
  // Pending entries, last on top; children are pushed in reverse so they pop in sorted order.
  const stack = ((await listDirectory(root, '', warn)) ?? []).reverse()
  while (stack.length > 0) {
    const { name, isDirectory } = stack.pop() as Listed
    if (excluded(name, isDirectory)) continue
    const found = { path: name, absolute: join(root, name), isDirectory }
    if (isDirectory) {
      const children = await listDirectory(found.absolute, `${name}/`, warn)
      if (!children) continue
      yield found
      for (let i = children.length - 1; i >= 0; i--) stack.push(children[i] as Listed)
    } else {
      yield found
    }
  }
}

interface Listed {
  /** Path relative to root. */
  name: string
  isDirectory: boolean
}

/**
 * A directory's children, sorted by the UTF-8 bytes of their names; undefined when it vanished.
 * Names that are not valid UTF-8 cannot be stored faithfully as a PAX path, so they are skipped.
 */
async function listDirectory(
  absolute: string,
  prefix: string,
  warn: (message: string) => void,
): Promise<Listed[] | undefined> {
  let dirents: Dirent<Buffer>[]
  try {
    dirents = await readdir(absolute, { encoding: 'buffer', withFileTypes: true })
  } catch (error) {
    if (isVanished(error) && prefix !== '') {
      warn(`${prefix}: skipped, the directory vanished while reading`)
      return undefined
    }
    throw new SourceError(
      `cannot read directory ${absolute}: ${codeOf(error)}`,
      'give the backup user read and execute permission on it, or exclude it',
    )
  }
  dirents.sort((a, b) => Buffer.compare(a.name, b.name))
  const listed: Listed[] = []
  for (const dirent of dirents) {
    const name = dirent.name.toString('utf8')
    if (Buffer.from(name, 'utf8').equals(dirent.name)) {
      listed.push({ name: prefix + name, isDirectory: dirent.isDirectory() })
    } else {
      warn(`${prefix}${name}: skipped, the name is not valid UTF-8`)
    }
  }
  return listed
}

// ---------------------------------------------------------------------------------------------
// Reading ahead: lstat, readlink and small files, several at once

type Prepared =
  | { kind: 'skip'; warning: string }
  | { kind: 'directory'; path: string; stats: Stats }
  | { kind: 'symlink'; path: string; stats: Stats; target: string }
  | FileEntry

interface FileEntry {
  kind: 'file'
  path: string
  absolute: string
  stats: Stats
  /** Read ahead for small files only. */
  content?: Buffer
  shrank?: boolean
}

/**
 * Prepares up to READ_AHEAD entries concurrently and returns them in order: one file system
 * call at a time costs ~100 µs per small file, which would cap throughput on trees of small files.
 */
async function* readAhead(found: AsyncIterable<Found>): AsyncGenerator<Prepared> {
  const queue: Promise<Prepared>[] = []
  for await (const item of found) {
    const prepared = prepare(item)
    prepared.catch(() => {}) // rethrown when its turn comes; no unhandled rejection meanwhile
    queue.push(prepared)
    if (queue.length >= READ_AHEAD) yield await (queue.shift() as Promise<Prepared>)
  }
  while (queue.length > 0) yield await (queue.shift() as Promise<Prepared>)
}

async function prepare({ path, absolute, isDirectory }: Found): Promise<Prepared> {
  const vanished = { kind: 'skip', warning: `${path}: skipped, it vanished while reading` } as const
  try {
    const stats = await lstat(absolute)
    if (stats.isDirectory() !== isDirectory) {
      return { kind: 'skip', warning: `${path}: skipped, it changed type while reading` }
    }
    if (stats.isDirectory()) return { kind: 'directory', path, stats }
    if (stats.isSymbolicLink()) {
      return { kind: 'symlink', path, stats, target: await readlink(absolute) }
    }
    if (!stats.isFile()) {
      return {
        kind: 'skip',
        warning: `${path}: skipped, sockets, FIFOs and devices are not backed up`,
      }
    }
    if (stats.size > SMALL_FILE) return { kind: 'file', path, absolute, stats }
    const { content, shrank } = await readSmallFile(absolute, path, stats.size)
    return { kind: 'file', path, absolute, stats, content, shrank }
  } catch (error) {
    if (isVanished(error)) return vanished
    throw readError(path, error)
  }
}

/** The first `size` bytes of the file, zero-padded if it shrank. */
async function readSmallFile(absolute: string, path: string, size: number) {
  const handle = await openFile(absolute, path)
  try {
    const content = Buffer.allocUnsafe(size)
    const shrank = (await readFully(handle, content)) < size
    return { content, shrank }
  } finally {
    await handle.close()
  }
}

// ---------------------------------------------------------------------------------------------
// Writing entries

function writeDirectory(out: Output, path: string, stats: Stats, facts: TarFact[]): void {
  const fields = headerFields(`${path}/`, '5', stats, 0)
  const { mode, mtime } = fields
  facts.push({ path, type: 'directory', mode, mtime, size: 0, offset: out.offset })
  out.push(encodeHeaders(fields))
}

function writeSymlink(
  out: Output,
  { path, stats, target }: { path: string; stats: Stats; target: string },
  facts: TarFact[],
): void {
  const fields = { ...headerFields(path, '2', stats, 0), linkpath: target }
  const { mode, mtime } = fields
  facts.push({ path, type: 'symlink', mode, mtime, size: 0, target, offset: out.offset })
  out.push(encodeHeaders(fields))
}

function writeSmallFile(
  out: Output,
  { path, stats, shrank }: FileEntry,
  content: Buffer,
  facts: TarFact[],
  warn: (message: string) => void,
): void {
  if (shrank) warn(changedWhileReading(path))
  const fields = headerFields(path, '0', stats, stats.size)
  out.push(encodeHeaders(fields))
  const offset = out.offset
  out.push(content)
  pushPadding(out, stats.size)
  const sha256 = createHash('sha256').update(content).digest('hex')
  const { mode, mtime, size } = fields
  facts.push({ path, type: 'file', mode, mtime, size, sha256, offset })
}

/** Header and content in pieces of PIECE bytes; hard links are stored as separate files. */
async function* writeLargeFile(
  out: Output,
  { path, absolute, stats }: FileEntry,
  facts: TarFact[],
  warn: (message: string) => void,
): AsyncGenerator<Buffer> {
  let handle: FileHandle
  try {
    handle = await openFile(absolute, path)
  } catch (error) {
    if (!isVanished(error)) throw readError(path, error)
    warn(`${path}: skipped, it vanished while reading`)
    return
  }
  try {
    // The size from lstat is what the header promises; later growth is not read.
    const fields = headerFields(path, '0', stats, stats.size)
    out.push(encodeHeaders(fields))
    const offset = out.offset
    const hash = createHash('sha256')
    let shrank = false
    for (let left = stats.size; left > 0; ) {
      const piece = Buffer.allocUnsafe(Math.min(left, PIECE))
      if ((await readFully(handle, piece)) < piece.length) shrank = true
      hash.update(piece)
      out.push(piece)
      left -= piece.length
      if (out.full) yield out.take()
    }
    if (shrank) warn(changedWhileReading(path))
    pushPadding(out, stats.size)
    const { mode, mtime, size } = fields
    facts.push({ path, type: 'file', mode, mtime, size, sha256: hash.digest('hex'), offset })
  } finally {
    await handle.close()
  }
}

function changedWhileReading(path: string): string {
  return `${path}: changed while reading; the missing end is stored as zero bytes`
}

function pushPadding(out: Output, size: number): void {
  const padding = paddingOf(size)
  if (padding > 0) out.push(Buffer.alloc(padding))
}

/** Opens a file found by lstat, refusing anything that is no longer a regular file. */
async function openFile(absolute: string, path: string): Promise<FileHandle> {
  // In case it was replaced since lstat: O_NOFOLLOW does not read a symlink's target,
  // O_NONBLOCK does not hang on a FIFO.
  const flags = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK
  const handle = await open(absolute, flags)
  if (!(await handle.stat()).isFile()) {
    await handle.close()
    throw Object.assign(new Error(`${path} changed type while reading`), { code: 'ENOENT' })
  }
  return handle
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
    'give the backup user read permission on it, or exclude it',
  )
}

/** The entry disappeared (or a parent was replaced by a file) since it was listed. */
function isVanished(error: unknown): boolean {
  const code = codeOf(error)
  return code === 'ENOENT' || code === 'ENOTDIR'
}

function codeOf(error: unknown): string {
  const code = (error as NodeJS.ErrnoException | undefined)?.code
  return code ?? (error instanceof Error ? error.message : String(error))
}
