import * as openpgp from 'openpgp'
import { KeyError } from '../core/errors.js'

export type PublicKey = openpgp.PublicKey
export type PrivateKey = openpgp.PrivateKey

export type KeyKind = 'ecc' | 'rsa'

export interface GeneratedKey {
  publicArmored: string
  privateArmored: string
  fingerprint: string
}

/**
 * Generates a v4 key with a signing primary key and an encryption subkey. v4 Curve25519
 * ("curve25519Legacy") or RSA-4096: the kinds gpg 2.2 and sq 0.27 read. Never v6 keys or
 * AEAD preferences, which would make openpgp.js write SEIPDv2 messages those tools cannot read.
 */
export async function generateKey(options: {
  name: string
  email?: string
  kind: KeyKind
  passphrase?: string
}): Promise<GeneratedKey> {
  const userIDs = [{ name: options.name, ...(options.email ? { email: options.email } : {}) }]
  const common = {
    userIDs,
    format: 'armored' as const,
    config: { v6Keys: false, aeadProtect: false },
    ...(options.passphrase ? { passphrase: options.passphrase } : {}),
  }
  const generated =
    options.kind === 'rsa'
      ? await openpgp.generateKey({ ...common, type: 'rsa', rsaBits: 4096 })
      : await openpgp.generateKey({ ...common, type: 'ecc', curve: 'curve25519Legacy' })
  const key = await openpgp.readKey({ armoredKey: generated.publicKey })
  return {
    publicArmored: generated.publicKey,
    privateArmored: generated.privateKey,
    fingerprint: key.getFingerprint().toUpperCase(),
  }
}

export function fingerprintOf(key: openpgp.Key): string {
  return key.getFingerprint().toUpperCase()
}

/** Reads one or more armored public keys (a file may hold several). Private keys are refused. */
export async function readPublicKeys(armored: string, label: string): Promise<PublicKey[]> {
  let keys: openpgp.Key[]
  try {
    keys = await openpgp.readKeys({ armoredKeys: armored })
  } catch {
    throw new KeyError(
      `${label} is not an armored OpenPGP public key`,
      'give the path of a .asc file that starts with -----BEGIN PGP PUBLIC KEY BLOCK-----',
    )
  }
  if (keys.some((key) => key.isPrivate())) {
    throw new KeyError(
      `${label} is a private key where a public key belongs`,
      'give the public half (reader.asc / writer.asc); private keys stay off the backup job',
    )
  }
  return keys as PublicKey[]
}

/**
 * Reads an armored private key and unlocks it. Errors name the key (never its content) and
 * say whether the passphrase is missing or wrong.
 */
export async function readPrivateKey(
  armored: string,
  label: string,
  passphrase: string | undefined,
  passphraseVariable: string,
): Promise<PrivateKey> {
  let key: PrivateKey
  try {
    key = await openpgp.readPrivateKey({ armoredKey: armored })
  } catch {
    throw new KeyError(
      `${label} is not an armored OpenPGP private key`,
      'give a file that starts with -----BEGIN PGP PRIVATE KEY BLOCK-----',
    )
  }
  if (key.isDecrypted()) return key
  if (!passphrase) {
    throw new KeyError(
      `${label} is protected by a passphrase and none was given`,
      `set ${passphraseVariable} to the key's passphrase`,
    )
  }
  try {
    return await openpgp.decryptKey({ privateKey: key, passphrase })
  } catch {
    throw new KeyError(
      `the passphrase for ${label} is wrong`,
      `check ${passphraseVariable}; the key itself was read correctly`,
    )
  }
}
