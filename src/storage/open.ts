import { isAbsolute, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ConfigError } from '../core/errors.js'
import { LocalStorage } from './local.js'
import type { StorageBackend, StorageSettings } from './storage.js'

/**
 * Opens the backend named by a repository URL. `file://./dir` and plain paths are relative to
 * `baseDirectory` (the configuration file's folder). The cloud backends are loaded only when
 * used: their SDKs are large, and a local restore on a laptop needs neither.
 */
export async function openStorage(
  repository: string,
  baseDirectory: string,
  settings: StorageSettings = {},
  env: NodeJS.ProcessEnv = process.env,
): Promise<StorageBackend> {
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(repository)?.[1]?.toLowerCase()
  if (scheme === undefined) return new LocalStorage(resolve(baseDirectory, repository), settings)
  if (scheme === 'file') return new LocalStorage(localPath(repository, baseDirectory), settings)
  if (scheme === 's3') {
    const { S3Storage } = await import('./s3.js')
    return S3Storage.fromUrl(repository, settings, env)
  }
  if (scheme === 'azure') {
    const { AzureStorage } = await import('./azure.js')
    return AzureStorage.fromUrl(repository, settings, env)
  }
  throw new ConfigError(
    `unsupported repository URL scheme '${scheme}://'`,
    'use s3://BUCKET/PREFIX, azure://CONTAINER/PREFIX, file://PATH or a plain directory path',
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
