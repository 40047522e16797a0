import * as core from '@actions/core'
import type { KluisConfig } from '../config/config.js'
import { secretForms } from '../core/redact.js'
import { databaseScheme, parseDatabaseUrl } from '../sources/database/database-url.js'

/** Environment variables whose values are key material, passphrases or storage credentials. */
const SECRET_VARIABLES = [
  'KLUIS_WRITER_KEY',
  'KLUIS_READER_KEY',
  'KLUIS_WRITER_PASSPHRASE',
  'KLUIS_READER_PASSPHRASE',
  'AWS_SECRET_ACCESS_KEY',
  'AWS_SESSION_TOKEN',
  'AZURE_STORAGE_KEY',
  'AZURE_STORAGE_SAS_TOKEN',
  'AZURE_STORAGE_CONNECTION_STRING',
]

/** Parts of an Azure connection string that are secrets on their own. */
const CONNECTION_STRING_SECRETS = /(?:AccountKey|SharedAccessSignature)=([^;]+)/g

/**
 * Registers every secret with the runner's log masker. The runner masks line by line, so a
 * multi-line armored key is masked one line at a time. Call before anything is logged.
 */
export function maskSecrets(env: NodeJS.ProcessEnv): void {
  for (const name of SECRET_VARIABLES) {
    for (const line of (env[name] ?? '').split(/\r?\n/)) {
      const secret = line.trim()
      if (secret !== '') core.setSecret(secret)
    }
  }
  // The runner masks the whole connection string; its key can still appear alone.
  for (const [, secret] of (env.AZURE_STORAGE_CONNECTION_STRING ?? '').matchAll(
    CONNECTION_STRING_SECRETS,
  )) {
    if (secret) core.setSecret(secret)
  }
}

/**
 * Registers the passwords of database URLs (the sources', a restore target's) in every form
 * they take: the runner masks a secret's whole value, not the password inside a URL.
 */
export function maskDatabasePasswords(config: KluisConfig, target: string | undefined): void {
  const urls = config.sources.flatMap((source) => ('url' in source ? [source.url] : []))
  for (const text of [...urls, target ?? '']) {
    if (!databaseScheme(text)) continue
    try {
      const { password } = parseDatabaseUrl(text, 'url')
      for (const form of secretForms(password ?? '')) core.setSecret(form)
    } catch {
      // A malformed URL fails later with a message that never quotes it.
    }
  }
}
