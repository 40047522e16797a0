/**
 * What the tar writer and reader report about each entry; the restore test compares the facts
 * of a backup with those of its restore.
 */
export interface TarFact {
  /** Path relative to the tree's root, '/'-separated, no trailing '/'. */
  path: string
  type: 'file' | 'directory' | 'symlink'
  /** Permission bits including setuid, setgid and sticky (mode & 0o7777). */
  mode: number
  /** Modification time in whole seconds since the epoch. */
  mtime: number
  /** Content size in bytes; 0 for directories and symlinks. */
  size: number
  /** Files only: hex SHA-256 of the content. */
  sha256?: string
  /** Symlinks only: the link target, as stored. */
  target?: string
  /**
   * Byte offset in the tar stream: of the entry's data for files, of the entry's first header
   * (its PAX header when it has one) otherwise.
   */
  offset: number
}
