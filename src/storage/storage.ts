/**
 * Where a repository lives. Object names are relative, '/'-separated ("chunks/ab/ab12…").
 * Backends know nothing of snapshots or encryption; the repository layer gives them bytes.
 */
export interface StorageBackend {
  /** A human-readable location for messages (never contains credentials). */
  readonly location: string

  /**
   * Writes `data` as `name` atomically: a reader sees the whole object or nothing.
   * Returns false, leaving the stored object untouched, if `name` already exists.
   */
  putIfAbsent(name: string, data: Buffer): Promise<boolean>

  /** The object's bytes. Throws ObjectNotFoundError if it does not exist. */
  get(name: string): Promise<Buffer>

  /** The object's size, or undefined if it does not exist. */
  stat(name: string): Promise<{ size: number } | undefined>

  /** Every object whose name starts with `prefix`, in no particular order. */
  list(prefix: string): AsyncIterable<StoredObject>

  /** Removes the object; removing a missing object is not an error. */
  delete(name: string): Promise<void>
}

export interface StoredObject {
  name: string
  size: number
}

export class ObjectNotFoundError extends Error {
  constructor(readonly object: string) {
    super(`${object} does not exist`)
  }
}
