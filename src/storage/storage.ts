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

  /**
   * Creates the bucket, container or folder when it does not exist (`kluis init`). When the
   * credentials may not, throws a StorageError that names the missing permission.
   */
  create(): Promise<'created' | 'exists'>

  /**
   * What an auditor should know about where the backups live, as warnings: versioning off,
   * object lock missing or shorter than `retentionDays`, credentials that may delete. Empty
   * when there is nothing to say.
   */
  posture(retentionDays: number): Promise<string[]>

  /** How many objects to upload at once (storage.concurrency, or the backend's default). */
  readonly concurrency: number

  /**
   * Removes what writes interrupted before `before` left behind, where the backend keeps such
   * leftovers: the local backend's temporary files. (An S3 upload in parts is aborted by the
   * process or the action's post step; Azure discards uncommitted blocks itself.)
   */
  sweepAbandonedWrites?(before: Date): Promise<{ files: number; bytes: number }>

  /** storage.object-lock's period in days, where objects are written with one. */
  readonly objectLockDays?: number

  /**
   * Extends the object lock of `name` (S3 retention, an Azure immutability policy) to `until`,
   * in the configured mode. Present where storage.object-lock is set.
   */
  extendObjectLock?(name: string, until: Date): Promise<void>
}

/**
 * Chunks are the bulk of a repository and are read only by restores and checks; the storage
 * class applies to them alone. The config, keys, indexes and manifests are read on every run,
 * and an archive class (Glacier, Archive) would make them unreadable without a rehydration.
 */
export function isBulkData(name: string): boolean {
  return name.startsWith('chunks/')
}

/** The `storage:` block of the configuration; every field optional. */
export interface StorageSettings {
  /** An S3-compatible service's endpoint (R2, B2, MinIO, Wasabi, a test server). */
  endpoint?: string
  region?: string
  /** Bucket in the path (https://host/bucket/key), as most S3-compatible services want. */
  pathStyle?: boolean
  /** Applied to chunks only (see isBulkData). */
  storageClass?: string
  serverSideEncryption?: 'AES256' | 'aws:kms' | 'aws:kms:dsse'
  kmsKeyId?: string
  /** Retention for every object written (S3 Object Lock; the bucket must have it enabled). */
  objectLock?: { mode: 'GOVERNANCE' | 'COMPLIANCE'; days: number }
  concurrency?: number
  /** Seconds a request may go without progress before it is abandoned and retried. */
  timeout?: number
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
