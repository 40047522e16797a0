import { access, mkdir, open } from 'node:fs/promises'
import { join } from 'node:path'
import { RefusedError } from '../core/errors.js'
import { generateKey, type KeyKind } from '../crypto/keys.js'

export interface GenerateKeysOptions {
  out: string
  kind: KeyKind
  force: boolean
  /** Protects reader.key with this passphrase. */
  readerPassphrase?: string
  name?: string
}

export interface GeneratedKeys {
  directory: string
  reader: { public: string; private: string; fingerprint: string }
  writer: { public: string; private: string; fingerprint: string }
}

/**
 * Writes a reader key pair (decrypts backups: keep its private half off CI) and a writer key
 * pair (signs backups and unwraps dedup keys: the backup job holds it). Private halves are
 * created with mode 0600 and never overwritten without --force.
 */
export async function generateKeys(options: GenerateKeysOptions): Promise<GeneratedKeys> {
  const label = options.name ?? 'kluis'
  const reader = await generateKey({
    name: `${label} reader`,
    kind: options.kind,
    ...(options.readerPassphrase ? { passphrase: options.readerPassphrase } : {}),
  })
  const writer = await generateKey({ name: `${label} writer`, kind: options.kind })
  await mkdir(options.out, { recursive: true })
  const files: Array<[string, string, number]> = [
    ['reader.asc', reader.publicArmored, 0o644],
    ['reader.key', reader.privateArmored, 0o600],
    ['writer.asc', writer.publicArmored, 0o644],
    ['writer.key', writer.privateArmored, 0o600],
  ]
  if (!options.force) {
    for (const [name] of files) {
      const exists = await access(join(options.out, name)).then(
        () => true,
        () => false,
      )
      if (exists) {
        throw new RefusedError(
          `${join(options.out, name)} already exists`,
          'keys are never overwritten: choose another --out directory, or pass --force',
        )
      }
    }
  }
  for (const [name, text, mode] of files) {
    const handle = await open(join(options.out, name), 'w', mode)
    try {
      await handle.chmod(mode)
      await handle.writeFile(text)
    } finally {
      await handle.close()
    }
  }
  const path = (name: string) => join(options.out, name)
  return {
    directory: options.out,
    reader: {
      public: path('reader.asc'),
      private: path('reader.key'),
      fingerprint: reader.fingerprint,
    },
    writer: {
      public: path('writer.asc'),
      private: path('writer.key'),
      fingerprint: writer.fingerprint,
    },
  }
}
