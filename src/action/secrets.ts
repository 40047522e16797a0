import * as core from '@actions/core'

/** Environment variables whose values are key material or passphrases. */
const SECRET_VARIABLES = [
  'KLUIS_WRITER_KEY',
  'KLUIS_READER_KEY',
  'KLUIS_WRITER_PASSPHRASE',
  'KLUIS_READER_PASSPHRASE',
]

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
}
