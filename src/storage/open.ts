import { isAbsolute, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ConfigError } from '../core/errors.js'
import { LocalStorage } from './local.js'
import type { StorageBackend } from './storage.js'

/**
 * Opens the backend named by a repository URL. `file://./dir` and plain paths are relative to
 * `baseDirectory` (the configuration file's folder). Later backends register their scheme here.
 */
export function openStorage(repository: string, baseDirectory: string): StorageBackend {
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(repository)?.[1]?.toLowerCase()
  if (scheme === undefined) return new LocalStorage(resolve(baseDirectory, repository))
  if (scheme === 'file') return new LocalStorage(localPath(repository, baseDirectory))
  throw new ConfigError(
    `unsupported repository URL scheme '${scheme}://' in '${repository}'`,
    'use file://PATH or a plain directory path (s3:// and azure:// come with the storage backends)',
  )
}

function localPath(url: string, baseDirectory: string): string {
  const rest = url.slice('file://'.length)
  // file://./dir and file://dir are relative; file:///abs is absolute.
  if (rest.startsWith('/')) return fileURLToPath(url)
  if (rest === '' || rest === '.') return resolve(baseDirectory)
  const path = decodeURIComponent(rest)
  return isAbsolute(path) ? path : resolve(baseDirectory, path)
}
