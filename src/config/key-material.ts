import { readFile } from 'node:fs/promises'
import { ConfigError, KeyError } from '../core/errors.js'
import { type PrivateKey, type PublicKey, readPrivateKey, readPublicKeys } from '../crypto/keys.js'
import { type KluisConfig, requireWriterKey, resolvePath } from './config.js'

/**
 * Turns the key settings of a configuration into keys. A setting is either armored key text
 * (as from `${KLUIS_WRITER_KEY}`) or a path relative to the configuration file.
 */

async function keyText(
  config: KluisConfig,
  spec: string,
  setting: string,
): Promise<{ text: string; label: string }> {
  if (spec.includes('-----BEGIN PGP')) return { text: spec, label: `the key in ${setting}` }
  const path = resolvePath(config, spec)
  try {
    return { text: await readFile(path, 'utf8'), label: `key file ${spec}` }
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    throw new ConfigError(
      `${setting}: key file ${spec} ${code === 'ENOENT' ? 'does not exist' : `cannot be read (${code})`}`,
      'create keys with `kluis keys generate --out keys`, or fix the path (relative to the configuration file)',
    )
  }
}

export async function loadReaderKeys(config: KluisConfig, group: string): Promise<PublicKey[]> {
  const specs = config.keys.readers.get(group) ?? []
  const keys: PublicKey[] = []
  for (const [i, spec] of specs.entries()) {
    const setting =
      group === 'default' ? `keys.readers[${i}]` : `keys.groups.${group}.readers[${i}]`
    const { text, label } = await keyText(config, spec, setting)
    keys.push(...(await readPublicKeys(text, label)))
  }
  return keys
}

export async function loadWriterPublicKey(config: KluisConfig): Promise<PublicKey> {
  const { text, label } = await keyText(config, config.keys.writerPublic, 'keys.writer-public')
  const keys = await readPublicKeys(text, label)
  if (keys.length !== 1)
    throw new KeyError(`${label} must hold exactly one public key (the writer's)`)
  return keys[0] as PublicKey
}

export async function loadWriterKey(
  config: KluisConfig,
  env: NodeJS.ProcessEnv,
): Promise<PrivateKey> {
  const { text, label } = await keyText(config, requireWriterKey(config), 'keys.writer')
  const key = await readPrivateKey(
    text,
    label,
    env.KLUIS_WRITER_PASSPHRASE,
    'KLUIS_WRITER_PASSPHRASE',
  )
  const trusted = await loadWriterPublicKey(config)
  if (key.getFingerprint() !== trusted.getFingerprint()) {
    throw new KeyError(
      `${label} is not the private half of keys.writer-public`,
      'restore trusts only keys.writer-public: make both settings name the same writer key',
    )
  }
  return key
}

/**
 * The reader's private keys: one per --key PATH (several when the snapshot's key groups have
 * different readers), or else the armored key in KLUIS_READER_KEY. KLUIS_READER_PASSPHRASE
 * unlocks any of them that is protected.
 */
export async function loadReaderPrivateKeys(
  keyPaths: string[],
  env: NodeJS.ProcessEnv,
): Promise<PrivateKey[]> {
  const passphrase = env.KLUIS_READER_PASSPHRASE
  if (keyPaths.length > 0) {
    const keys: PrivateKey[] = []
    for (const keyPath of keyPaths) {
      let text: string
      try {
        text = await readFile(keyPath, 'utf8')
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code
        throw new ConfigError(
          `--key ${keyPath} ${code === 'ENOENT' ? 'does not exist' : `cannot be read (${code})`}`,
        )
      }
      keys.push(
        await readPrivateKey(text, `key file ${keyPath}`, passphrase, 'KLUIS_READER_PASSPHRASE'),
      )
    }
    return keys
  }
  if (env.KLUIS_READER_KEY) {
    return [
      await readPrivateKey(
        env.KLUIS_READER_KEY,
        'the key in KLUIS_READER_KEY',
        passphrase,
        'KLUIS_READER_PASSPHRASE',
      ),
    ]
  }
  throw new ConfigError(
    'reading backups needs a reader private key',
    'pass --key PATH, or set KLUIS_READER_KEY to the armored key (and KLUIS_READER_PASSPHRASE if it has one)',
  )
}
