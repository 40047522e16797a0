import { randomBytes } from 'node:crypto'
import { constants, type Dirent, type Stats } from 'node:fs'
import { link, mkdir, open, readdir, readFile, rm, stat, unlink } from 'node:fs/promises'
import { dirname, join, sep } from 'node:path'
import { errorMessage, StorageError } from '../core/errors.js'
import {
  ObjectNotFoundError,
  type StorageBackend,
  type StorageSettings,
  type StoredObject,
} from './storage.js'

/** What putIfAbsent writes before linking the object into place. */
const TEMPORARY_FILE = /\.tmp-[0-9a-f]{12}$/

/** Enough parallel writes to keep two cores busy compressing and encrypting. */
const LOCAL_CONCURRENCY = 4

/**
 * A repository in a local directory. Writes go to a temporary file that is fsynced and then
 * hard-linked to its final name: link() fails if the name exists, which makes put-if-absent
 * atomic, and a reader never sees half an object. The directory is fsynced after the link.
 */
export class LocalStorage implements StorageBackend {
  readonly location: string
  readonly concurrency: number

  constructor(
    private readonly root: string,
    settings: StorageSettings = {},
  ) {
    this.location = root
    this.concurrency = settings.concurrency ?? LOCAL_CONCURRENCY
  }

  async create(): Promise<'created' | 'exists'> {
    try {
      return (await mkdir(this.root, { recursive: true })) === undefined ? 'exists' : 'created'
    } catch (error) {
      throw this.failure('create', 'the repository folder', error)
    }
  }

  /** A local folder has no versioning or locks to report; being local is plain from its path. */
  async posture(): Promise<string[]> {
    return []
  }

  async putIfAbsent(name: string, data: Buffer): Promise<boolean> {
    const path = this.path(name)
    const directory = dirname(path)
    const firstCreated = await mkdir(directory, { recursive: true })
    // A new directory's own entry must be durable too, or the object could vanish on power loss.
    if (firstCreated) await syncDirectory(dirname(firstCreated))
    const temporary = `${path}.tmp-${randomBytes(6).toString('hex')}`
    try {
      const handle = await open(
        temporary,
        constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL,
        0o644,
      )
      try {
        await handle.writeFile(data)
        await handle.sync()
      } finally {
        await handle.close()
      }
      try {
        await link(temporary, path)
      } catch (error) {
        if (isCode(error, 'EEXIST')) return false
        throw error
      }
      await syncDirectory(directory)
      return true
    } catch (error) {
      throw this.failure('write', name, error)
    } finally {
      await unlink(temporary).catch(() => {})
    }
  }

  async get(name: string): Promise<Buffer> {
    try {
      return await readFile(this.path(name))
    } catch (error) {
      if (isCode(error, 'ENOENT')) throw new ObjectNotFoundError(name)
      throw this.failure('read', name, error)
    }
  }

  async stat(name: string): Promise<{ size: number } | undefined> {
    try {
      const info = await stat(this.path(name))
      return { size: info.size }
    } catch (error) {
      if (isCode(error, 'ENOENT')) return undefined
      throw this.failure('stat', name, error)
    }
  }

  async *list(prefix: string): AsyncIterable<StoredObject> {
    // List the deepest directory named by the prefix, then filter by the rest of it.
    const slash = prefix.lastIndexOf('/')
    const base = slash >= 0 ? prefix.slice(0, slash) : ''
    for await (const { name, file, info } of this.walk(base, prefix)) {
      if (!file.includes('.tmp-')) yield { name, size: info.size }
    }
  }

  /** Every file below `relative` whose name starts with `prefix`, temporary files included. */
  private async *walk(
    relative: string,
    prefix: string,
  ): AsyncIterable<{ name: string; file: string; info: Stats }> {
    let entries: Dirent[]
    try {
      entries = await readdir(this.path(relative), { withFileTypes: true })
    } catch (error) {
      if (isCode(error, 'ENOENT')) return
      throw this.failure('list', relative || '.', error)
    }
    for (const entry of entries) {
      const name = relative ? `${relative}/${entry.name}` : entry.name
      if (entry.isDirectory()) {
        if (prefix.startsWith(`${name}/`) || name.startsWith(prefix)) yield* this.walk(name, prefix)
      } else if (entry.isFile() && name.startsWith(prefix)) {
        // Gone since the listing (released, renamed): not there.
        const info = await stat(this.path(name)).catch(() => undefined)
        if (info) yield { name, file: entry.name, info }
      }
    }
  }

  /** Temporary files of writes whose process died before linking or removing them. */
  async sweepAbandonedWrites(before: Date): Promise<{ files: number; bytes: number }> {
    const swept = { files: 0, bytes: 0 }
    for await (const { name, file, info } of this.walk('', '')) {
      if (!TEMPORARY_FILE.test(file) || info.mtime >= before) continue
      await this.delete(name)
      swept.files++
      swept.bytes += info.size
    }
    return swept
  }

  async delete(name: string): Promise<void> {
    await rm(this.path(name), { force: true }).catch((error) => {
      throw this.failure('delete', name, error)
    })
  }

  private path(name: string): string {
    if (name.split('/').some((part) => part === '..') || name.startsWith('/')) {
      throw new StorageError(`invalid object name ${name}`)
    }
    return name ? join(this.root, name.split('/').join(sep)) : this.root
  }

  private failure(operation: string, name: string, error: unknown): StorageError {
    if (error instanceof StorageError) return error
    const code = (error as NodeJS.ErrnoException).code ?? ''
    const hint =
      code === 'EACCES' || code === 'EPERM'
        ? `check that this user may write to ${this.root}`
        : code === 'ENOSPC'
          ? `free space on the disk that holds ${this.root}`
          : undefined
    const detail = errorMessage(error)
    return new StorageError(`cannot ${operation} ${name} in ${this.root}: ${detail}`, hint)
  }
}

async function syncDirectory(directory: string): Promise<void> {
  const handle = await open(directory, constants.O_RDONLY)
  try {
    await handle.sync()
  } finally {
    await handle.close()
  }
}

function isCode(error: unknown, code: string): boolean {
  return (error as NodeJS.ErrnoException | undefined)?.code === code
}
