/**
 * Extracts a tar stream (ustar, PAX, GNU long names) into an empty directory, with the
 * safeguards of node-tar: no absolute paths or '..', nothing written through a symlink, and no
 * symlink that points outside the destination. Symlinks are created only at the end, once the
 * whole archive is known, so a later entry cannot redirect an earlier one's target.
 */
import { createHash } from 'node:crypto'
import { constants } from 'node:fs'
import {
  chmod,
  chown,
  copyFile,
  type FileHandle,
  lchown,
  link,
  lstat,
  lutimes,
  mkdir,
  open,
  symlink,
  unlink,
  utimes,
} from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { SourceError } from '../../core/errors.js'
import type { TarFact } from './types.js'

export interface ExtractTarOptions {
  onWarning?: (message: string) => void
}

const BLOCK = 512
/** PAX and GNU long-name data is buffered; more than this is not a sane header. */
const MAX_META_SIZE = 1 << 20
/** Symlinks followed while resolving one target before we call it a loop. */
const MAX_SYMLINK_HOPS = 40
/** File system calls we keep running at once: each costs a thread-pool round trip. */
const CONCURRENCY = 16
/** Files up to this size are buffered and written in the background; larger ones streamed. */
const SMALL_FILE = 256 << 10

export async function extractTar(
  stream: AsyncIterable<Buffer>,
  dest: string,
  options: ExtractTarOptions,
): Promise<TarFact[]> {
  const input = new ByteReader(stream)
  const extractor = new Extractor(resolve(dest), options.onWarning ?? (() => {}))
  try {
    await extractor.extractAll(input)
  } catch (error) {
    await extractor.settle() // let running writes end before reporting the error
    throw error
  } finally {
    await input.close()
  }
  return extractor.finish()
}

// ---------------------------------------------------------------------------------------------
// Reading the stream

/** Reads exact byte counts from an async iterable of chunks without copying where possible. */
class ByteReader {
  /** Bytes consumed so far: the stream offset of the next byte. */
  offset = 0
  private chunk: Buffer = Buffer.alloc(0)
  private position = 0
  private readonly iterator: AsyncIterator<Buffer>
  private done = false

  constructor(stream: AsyncIterable<Buffer>) {
    this.iterator = stream[Symbol.asyncIterator]()
  }

  /** Whether unread bytes are available, pulling the next chunk if needed. */
  async hasMore(): Promise<boolean> {
    while (this.position >= this.chunk.length) {
      if (this.done) return false
      const next = await this.iterator.next()
      if (next.done) {
        this.done = true
        return false
      }
      const value = next.value as Uint8Array
      this.chunk = Buffer.isBuffer(value)
        ? value
        : Buffer.from(value.buffer, value.byteOffset, value.byteLength)
      this.position = 0
    }
    return true
  }

  /** Exactly `length` bytes, a slice of the input when they lie in one chunk. */
  async read(length: number, what: string): Promise<Buffer> {
    const parts: Buffer[] = []
    for await (const piece of this.pieces(length, what)) parts.push(piece)
    return parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts, length)
  }

  /** The next `length` bytes as slices of the incoming chunks. Throws if the stream ends. */
  async *pieces(length: number, what: string): AsyncGenerator<Buffer> {
    let left = length
    while (left > 0) {
      if (!(await this.hasMore())) throw truncated(`it ends inside ${what}`)
      const take = Math.min(left, this.chunk.length - this.position)
      const piece = this.chunk.subarray(this.position, this.position + take)
      this.position += take
      this.offset += take
      left -= take
      yield piece
    }
  }

  async skip(length: number, what: string): Promise<void> {
    for await (const _ of this.pieces(length, what)) {
      // discard
    }
  }

  /** Consumes the rest of the stream (record padding); true if it held anything but zeros. */
  async drain(): Promise<boolean> {
    let extra = false
    while (await this.hasMore()) {
      const rest = this.chunk.subarray(this.position)
      if (!extra && rest.some((byte) => byte !== 0)) extra = true
      this.offset += rest.length
      this.position = this.chunk.length
    }
    return extra
  }

  async close(): Promise<void> {
    if (!this.done) {
      this.done = true
      await this.iterator.return?.()
    }
  }
}

function truncated(detail: string): SourceError {
  return new SourceError(
    `tar stream is truncated: ${detail}`,
    'the backup data is incomplete or damaged; try another snapshot',
  )
}

interface Owner {
  uid: number
  gid: number
}

interface Header {
  name: string
  mode: number
  owner: Owner
  size: number
  mtime: number
  type: string
  linkname: string
}

/** Values from PAX and GNU long-name headers that apply to the next entry. */
interface Meta {
  path?: string
  linkpath?: string
  size?: number
  mtime?: number
  uid?: number
  gid?: number
  sparse?: boolean
}

interface Entry {
  /** The path as written in the archive, for messages. */
  name: string
  type: string
  linkname: string
  mode: number
  owner: Owner
  size: number
  mtime: number
  /** Stream offset of the entry's first header. */
  offset: number
}

function parseHeader(block: Buffer, offset: number): Header {
  verifyChecksum(block, offset)
  const field = (start: number, length: number) => parseNumber(block, start, length, offset)
  let name = cString(block, 0, 100)
  // POSIX ustar splits long names into prefix/name; GNU's "ustar  " uses that area otherwise.
  if (block.toString('latin1', 257, 263) === 'ustar\0') {
    const prefix = cString(block, 345, 155)
    if (prefix !== '') name = `${prefix}/${name}`
  }
  const typeByte = block[156] ?? 0
  return {
    name,
    mode: field(100, 8) & 0o7777,
    owner: { uid: field(108, 8), gid: field(116, 8) },
    size: field(124, 12),
    mtime: field(136, 12),
    type: typeByte === 0 ? '0' : String.fromCharCode(typeByte),
    linkname: cString(block, 157, 100),
  }
}

function verifyChecksum(block: Buffer, offset: number): void {
  const stored = parseNumber(block, 148, 8, offset)
  let unsigned = 0
  let signed = 0
  for (let i = 0; i < BLOCK; i++) {
    const byte = i >= 148 && i < 156 ? 0x20 : (block[i] as number)
    unsigned += byte
    signed += byte > 127 ? byte - 256 : byte // some old tars summed signed chars
  }
  if (stored !== unsigned && stored !== signed) throw corruptHeader(offset, 'checksum mismatch')
}

/** Octal text, or GNU base-256 when the high bit of the first byte is set. */
function parseNumber(block: Buffer, start: number, length: number, offset: number): number {
  const first = block[start] as number
  if (first & 0x80) {
    const negative = first === 0xff
    let value = negative ? 0 : first & 0x7f
    for (let i = start + (negative ? 0 : 1); i < start + length; i++) {
      const byte = block[i] as number
      value = value * 256 + (negative ? byte ^ 0xff : byte)
    }
    return negative ? -(value + 1) : value
  }
  const text = block
    .toString('latin1', start, start + length)
    .replace(/[\0 ]+/g, ' ')
    .trim()
  if (text === '') return 0
  if (!/^[0-7]+$/.test(text)) throw corruptHeader(offset, 'invalid number')
  return Number.parseInt(text, 8)
}

function cString(block: Buffer, start: number, length: number): string {
  const end = block.indexOf(0, start)
  return block.toString('utf8', start, end === -1 || end > start + length ? start + length : end)
}

function corruptHeader(offset: number, detail: string): SourceError {
  return new SourceError(
    `tar header at byte ${offset} is corrupt (${detail})`,
    'the stream is not a tar archive or is damaged',
  )
}

/** PAX records: "<length> <key>=<value>\n". */
function parsePax(data: Buffer, offset: number, meta: Meta): void {
  let position = 0
  while (position < data.length && data[position] !== 0) {
    const space = data.indexOf(0x20, position)
    const length = Number.parseInt(data.toString('latin1', position, space), 10)
    if (space === -1 || !(length > 0) || position + length > data.length) {
      throw corruptHeader(offset, 'invalid PAX record')
    }
    const record = data.toString('utf8', space + 1, position + length - 1)
    const equals = record.indexOf('=')
    applyPaxRecord(meta, record.slice(0, equals), record.slice(equals + 1), offset)
    position += length
  }
}

function applyPaxRecord(meta: Meta, key: string, value: string, offset: number): void {
  // An empty value cancels the keyword.
  if (key === 'path') meta.path = value || undefined
  else if (key === 'linkpath') meta.linkpath = value || undefined
  else if (key === 'size') meta.size = value ? parseDecimal(value, offset) : undefined
  else if (key === 'uid') meta.uid = value ? parseDecimal(value, offset) : undefined
  else if (key === 'gid') meta.gid = value ? parseDecimal(value, offset) : undefined
  else if (key === 'mtime') meta.mtime = value ? Math.floor(Number(value)) : undefined
  else if (key.startsWith('GNU.sparse.')) meta.sparse = true
  if (meta.mtime !== undefined && !Number.isFinite(meta.mtime)) {
    throw corruptHeader(offset, 'invalid PAX mtime')
  }
}

function parseDecimal(value: string, offset: number): number {
  const number = Number(value)
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(number)) {
    throw corruptHeader(offset, 'invalid PAX number')
  }
  return number
}

function paddingOf(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK
}

// ---------------------------------------------------------------------------------------------
// Writing the tree

interface PendingSymlink {
  target: string
  mtime: number
  owner: Owner
}

interface DirectoryAttributes {
  mode: number
  mtime: number
  owner: Owner
}

class Extractor {
  /** Facts by path; a later entry for the same path replaces the earlier one. */
  private readonly facts = new Map<string, TarFact>()
  /** Paths known to be real directories (not symlinks) that we created or checked. */
  private readonly directories = new Set<string>([''])
  private readonly directoryAttributes = new Map<string, DirectoryAttributes>()
  /** Symlinks to create at the end. */
  private readonly symlinks = new Map<string, PendingSymlink>()
  /** Symlinks refused for an absolute target; still nothing may be written below them. */
  private readonly refusedSymlinks = new Set<string>()
  /** File writes still running, by path. */
  private readonly background = new Background(CONCURRENCY)
  /**
   * As root, like GNU tar, restore numeric owners: otherwise a setuid file would come back
   * setuid root.
   */
  private readonly restoreOwners = process.getuid?.() === 0

  constructor(
    private readonly dest: string,
    private readonly warn: (message: string) => void,
  ) {}

  async extractAll(input: ByteReader): Promise<void> {
    let meta: Meta = {}
    let metaOffset: number | undefined
    for (;;) {
      const offset = input.offset
      if (!(await input.hasMore())) throw truncated('the end-of-archive marker is missing')
      const block = await input.read(BLOCK, 'a header')
      if (block.every((byte) => byte === 0)) {
        if (await input.drain()) this.warn('ignored data after the end of the tar archive')
        return
      }
      const header = parseHeader(block, offset)
      if ('xgLK'.includes(header.type)) {
        await readMeta(input, header, offset, meta)
        if (header.type !== 'g') metaOffset ??= offset
        continue
      }
      const entry: Entry = {
        name: meta.path ?? header.name,
        type: header.type,
        linkname: meta.linkpath ?? header.linkname,
        mode: header.mode,
        owner: { uid: meta.uid ?? header.owner.uid, gid: meta.gid ?? header.owner.gid },
        size: meta.size ?? header.size,
        mtime: meta.mtime ?? header.mtime,
        offset: metaOffset ?? offset,
      }
      const sparse = meta.sparse === true
      meta = {}
      metaOffset = undefined
      await this.extractEntry(input, entry, sparse)
      await input.skip(paddingOf(entry.size), `the padding of ${entry.name}`)
    }
  }

  private async extractEntry(input: ByteReader, entry: Entry, sparse: boolean): Promise<void> {
    const path = safePath(entry.name)
    const isFile = '07'.includes(entry.type)
    const isDirectory = entry.type === '5' || (isFile && entry.name.endsWith('/'))
    let consumed = false
    if (path === '') {
      // The archive's root ("./"): dest already exists and keeps its own attributes.
    } else if (sparse) {
      this.warn(`${entry.name}: skipped, sparse files are not supported`)
    } else if (isDirectory) {
      await this.extractDirectory(path, entry)
    } else if (isFile) {
      await this.extractFile(input, path, entry)
      consumed = true
    } else if (entry.type === '2') {
      await this.extractSymlink(path, entry)
    } else if (entry.type === '1') {
      await this.extractHardLink(path, entry)
    } else {
      this.warn(`${entry.name}: skipped, unsupported tar entry type '${entry.type}'`)
    }
    if (!consumed) await input.skip(entry.size, entry.name)
  }

  private async extractDirectory(path: string, entry: Entry): Promise<void> {
    await this.claim(path, entry.name)
    if (!this.directories.has(path)) await this.makeDirectory(path, entry.name, true)
    const { mode, mtime, owner, offset } = entry
    this.directoryAttributes.set(path, { mode, mtime, owner })
    this.setFact({ path, type: 'directory', mode, mtime, size: 0, offset })
  }

  /**
   * Small files are buffered and written in the background, so that the thread-pool round trips
   * of many files overlap; large ones are streamed with back-pressure (each write awaited).
   */
  private async extractFile(input: ByteReader, path: string, entry: Entry): Promise<void> {
    await this.claim(path, entry.name)
    const offset = input.offset
    const hash = createHash('sha256')
    if (entry.size <= SMALL_FILE) {
      // A copy, so that we do not pin the whole input chunk while the write waits.
      const data = Buffer.from(await input.read(entry.size, entry.name))
      hash.update(data)
      await this.background.add(path, this.writeSmallFile(path, entry, data))
    } else {
      const handle = await this.createFile(path, entry.name)
      try {
        for await (const piece of input.pieces(entry.size, entry.name)) {
          hash.update(piece)
          await writeFully(handle, piece)
        }
      } catch (error) {
        await handle.close()
        throw error
      }
      await this.background.add(path, this.finishFile(handle, entry))
    }
    const { mode, mtime, size } = entry
    this.setFact({ path, type: 'file', mode, mtime, size, sha256: hash.digest('hex'), offset })
  }

  private async writeSmallFile(path: string, entry: Entry, data: Buffer): Promise<void> {
    const handle = await this.createFile(path, entry.name)
    try {
      await writeFully(handle, data)
    } catch (error) {
      await handle.close()
      throw writeError(entry.name, error)
    }
    await this.finishFile(handle, entry)
  }

  private createFile(path: string, name: string): Promise<FileHandle> {
    const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW
    return this.createExclusive(path, name, () => open(this.absolute(path), flags, 0o600))
  }

  /** Sets owner, mode and mtime of a written file, and closes it. */
  private async finishFile(handle: FileHandle, entry: Entry): Promise<void> {
    try {
      // After writing, and chown before chmod: both would clear setuid/setgid.
      if (this.restoreOwners) await handle.chown(entry.owner.uid, entry.owner.gid)
      await handle.chmod(entry.mode)
      await handle.utimes(entry.mtime, entry.mtime)
    } catch (error) {
      throw writeError(entry.name, error)
    } finally {
      await handle.close()
    }
  }

  private async extractSymlink(path: string, entry: Entry): Promise<void> {
    await this.claim(path, entry.name)
    const target = entry.linkname
    if (target === '' || target.startsWith('/') || target.includes('\0')) {
      this.refusedSymlinks.add(path)
      this.warn(`${entry.name}: symlink not created, its target "${target}" is outside the restore`)
      return
    }
    await this.removeExisting(path, entry.name)
    const { mode, mtime, owner, offset } = entry
    this.symlinks.set(path, { target, mtime, owner })
    this.setFact({ path, type: 'symlink', mode, mtime, size: 0, target, offset })
  }

  /** A hard link to a file extracted earlier: linked, or copied where linking fails. */
  private async extractHardLink(path: string, entry: Entry): Promise<void> {
    let target: string
    try {
      target = safePath(entry.linkname)
    } catch {
      target = ''
    }
    const targetFact = this.facts.get(target)
    if (targetFact?.type !== 'file') {
      this.warn(
        `${entry.name}: hard link skipped, its target "${entry.linkname}" was not extracted`,
      )
      return
    }
    await this.background.wait(target)
    await this.claim(path, entry.name)
    const from = this.absolute(target)
    const to = this.absolute(path)
    await this.createExclusive(path, entry.name, async () => {
      try {
        await link(from, to)
      } catch (error) {
        if (codeOf(error) === 'EEXIST') throw error
        await copyFile(from, to, constants.COPYFILE_EXCL)
      }
    })
    this.setFact({ ...targetFact, path })
  }

  /**
   * Makes `path` ready for a new entry: parents exist and are real directories, no write is
   * still running there, and a symlink an earlier entry planned there is forgotten.
   */
  private async claim(path: string, name: string): Promise<void> {
    await this.ensureParents(path, name)
    await this.background.wait(path)
    this.symlinks.delete(path)
    this.refusedSymlinks.delete(path)
  }

  /** Creates missing parent directories, refusing to go through a symlink or a file. */
  private async ensureParents(path: string, name: string): Promise<void> {
    const parts = path.split('/')
    let parent = ''
    for (let i = 0; i < parts.length - 1; i++) {
      parent = parent === '' ? (parts[i] as string) : `${parent}/${parts[i]}`
      if (this.directories.has(parent)) continue
      if (this.symlinks.has(parent) || this.refusedSymlinks.has(parent)) {
        throw new SourceError(
          `refusing tar entry "${name}": it would be written through the symlink ${parent}`,
          'the archive is malformed or hostile',
        )
      }
      await this.background.wait(parent)
      await this.makeDirectory(parent, name, false)
    }
  }

  /** mkdir, or accept a real directory already there; never a symlink to one. */
  private async makeDirectory(path: string, name: string, explicit: boolean): Promise<void> {
    const absolute = this.absolute(path)
    try {
      // Explicit directories stay private until their mode is set at the end.
      await mkdir(absolute, explicit ? 0o700 : 0o777)
    } catch (error) {
      if (codeOf(error) !== 'EEXIST') throw writeError(name, error)
      const stats = await lstat(absolute)
      if (stats.isSymbolicLink()) {
        throw new SourceError(
          `refusing tar entry "${name}": ${path} is a symlink already in the destination`,
        )
      }
      if (!stats.isDirectory()) {
        if (!explicit) throw new SourceError(`cannot extract "${name}": ${path} is not a directory`)
        await this.removeExisting(path, name)
        await mkdir(absolute, 0o700)
      }
    }
    this.directories.add(path)
  }

  /** Runs `create`; if something is already at the path, removes it and tries once more. */
  private async createExclusive<T>(path: string, name: string, create: () => Promise<T>) {
    try {
      return await create()
    } catch (error) {
      if (codeOf(error) !== 'EEXIST') throw writeError(name, error)
    }
    await this.removeExisting(path, name)
    try {
      return await create()
    } catch (error) {
      throw writeError(name, error)
    }
  }

  /** Removes a non-directory at the path: an earlier entry for the same path, which we replace. */
  private async removeExisting(path: string, name: string): Promise<void> {
    const absolute = this.absolute(path)
    const stats = await lstat(absolute).catch(() => undefined)
    if (!stats) return
    if (stats.isDirectory()) {
      throw new SourceError(`cannot extract "${name}": a directory is already at ${path}`)
    }
    await unlink(absolute)
  }

  private setFact(fact: TarFact): void {
    this.facts.delete(fact.path) // keep stream order when an entry is repeated
    this.facts.set(fact.path, fact)
  }

  private absolute(path: string): string {
    return join(this.dest, path)
  }

  /** Waits for the file writes still running, ignoring their failures (we already failed). */
  async settle(): Promise<void> {
    await this.background.all().catch(() => {})
  }

  /** Creates the symlinks that stay inside dest, then sets directory modes and mtimes. */
  async finish(): Promise<TarFact[]> {
    await this.background.all()
    this.dropEscapingSymlinks()
    for (const [path, link] of this.symlinks) {
      await this.background.add(path, this.createSymlink(path, link))
    }
    await this.background.all()
    // Deepest first: a parent whose mode denies search would keep us from reaching its children.
    const depthOf = (path: string) => path.split('/').length
    const directories = [...this.directoryAttributes].sort(([a], [b]) => depthOf(b) - depthOf(a))
    let depth = Number.POSITIVE_INFINITY
    for (const [path, attributes] of directories) {
      if (depthOf(path) < depth) {
        await this.background.all() // the deeper level is done
        depth = depthOf(path)
      }
      await this.background.add(path, this.setDirectoryAttributes(path, attributes))
    }
    await this.background.all()
    return [...this.facts.values()]
  }

  private async setDirectoryAttributes(path: string, { mode, mtime, owner }: DirectoryAttributes) {
    const absolute = this.absolute(path)
    if (this.restoreOwners) await chown(absolute, owner.uid, owner.gid)
    await chmod(absolute, mode)
    await utimes(absolute, mtime, mtime)
  }

  private async createSymlink(path: string, { target, mtime, owner }: PendingSymlink) {
    const absolute = this.absolute(path)
    try {
      await symlink(target, absolute)
    } catch (error) {
      // Only a name clash we did not foresee (e.g. a case-insensitive file system) gets here.
      if (codeOf(error) !== 'EEXIST') throw writeError(path, error)
      this.facts.delete(path)
      this.warn(`${path}: symlink not created, something else is already there`)
      return
    }
    if (this.restoreOwners) await lchown(absolute, owner.uid, owner.gid)
    await lutimes(absolute, mtime, mtime)
  }

  /**
   * Resolves every planned symlink through the others, as the kernel would once all exist, and
   * drops those that lead outside dest. Dropping one can change where others lead, so repeat.
   */
  private dropEscapingSymlinks(): void {
    let changed = true
    while (changed) {
      changed = false
      for (const [path, { target }] of this.symlinks) {
        if (!escapes(path, target, this.symlinks)) continue
        this.symlinks.delete(path)
        this.facts.delete(path)
        this.warn(`${path}: symlink not created, its target "${target}" is outside the restore`)
        changed = true
      }
    }
  }
}

/** PAX 'x' and GNU 'L'/'K' headers describe the next entry; PAX 'g' is ignored. */
async function readMeta(input: ByteReader, header: Header, offset: number, meta: Meta) {
  if (header.size > MAX_META_SIZE) throw corruptHeader(offset, 'extended header too large')
  const what = `the extended header at byte ${offset}`
  const data = await input.read(header.size, what)
  await input.skip(paddingOf(header.size), what)
  if (header.type === 'x') parsePax(data, offset, meta)
  else if (header.type === 'L') meta.path = cString(data, 0, data.length)
  else if (header.type === 'K') meta.linkpath = cString(data, 0, data.length)
}

/** Whether a relative symlink target at `linkPath` leads outside the root (or loops). */
function escapes(linkPath: string, target: string, symlinks: Map<string, PendingSymlink>) {
  const resolved = linkPath.split('/').slice(0, -1)
  const todo = target.split('/').reverse()
  let hops = 0
  while (todo.length > 0) {
    const part = todo.pop() as string
    if (part === '' || part === '.') continue
    if (part === '..') {
      if (resolved.length === 0) return true
      resolved.pop()
      continue
    }
    resolved.push(part)
    const next = symlinks.get(resolved.join('/'))?.target
    if (next === undefined) continue
    if (next.startsWith('/') || ++hops > MAX_SYMLINK_HOPS) return true
    resolved.pop()
    todo.push(...next.split('/').reverse())
  }
  return false
}

/** The entry's path relative to dest ('' for the root); throws for absolute paths and '..'. */
function safePath(name: string): string {
  const parts = name.split('/').filter((part) => part !== '' && part !== '.')
  const problem = name.startsWith('/')
    ? 'absolute path'
    : parts.includes('..')
      ? "the path contains '..'"
      : name.includes('\0')
        ? 'the path contains a NUL byte'
        : undefined
  if (problem) {
    throw new SourceError(
      `refusing tar entry "${name}": ${problem}`,
      'the archive is malformed or hostile',
    )
  }
  return parts.join('/')
}

/**
 * File system work running alongside the main loop, by path, at most `limit` at a time. The first
 * failure is kept and thrown by the next add, wait or all.
 */
class Background {
  private readonly running = new Map<string, Promise<void>>()
  private failure: { error: unknown } | undefined

  constructor(private readonly limit: number) {}

  /** Starts tracking `task` for `path`; waits while `limit` tasks are running. */
  async add(path: string, task: Promise<void>): Promise<void> {
    this.running.set(path, task)
    const done = () => {
      if (this.running.get(path) === task) this.running.delete(path)
    }
    task.then(done, (error: unknown) => {
      this.failure ??= { error }
      done()
    })
    while (this.running.size >= this.limit) {
      await Promise.race(this.running.values()).catch(() => {})
    }
    this.throwFailure()
  }

  /** Waits until no task for `path` is running. */
  async wait(path: string): Promise<void> {
    await this.running.get(path)?.catch(() => {})
    this.throwFailure()
  }

  async all(): Promise<void> {
    await Promise.allSettled(this.running.values())
    this.throwFailure()
  }

  private throwFailure(): void {
    if (this.failure) throw this.failure.error
  }
}

async function writeFully(handle: FileHandle, data: Buffer): Promise<void> {
  let written = 0
  while (written < data.length) {
    const result = await handle.write(data, written, data.length - written)
    written += result.bytesWritten
  }
}

function writeError(name: string, error: unknown): SourceError {
  return new SourceError(`cannot extract "${name}": ${codeOf(error)}`)
}

function codeOf(error: unknown): string {
  const code = (error as NodeJS.ErrnoException | undefined)?.code
  return code ?? (error instanceof Error ? error.message : String(error))
}
