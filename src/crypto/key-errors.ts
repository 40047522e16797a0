import type * as openpgp from 'openpgp'
import { KeyError } from '../core/errors.js'

/** The error for a message that none of the given keys can open: names both sides' key ids. */
export function noMatchingKey(
  message: openpgp.Message<Uint8Array>,
  object: string,
  given: openpgp.PrivateKey[],
): KeyError {
  const wanted = message.getEncryptionKeyIDs().map((id) => id.toHex().toUpperCase())
  const have = given.flatMap((key) => key.getKeys().map((k) => k.getKeyID().toHex().toUpperCase()))
  return new KeyError(
    `none of the given private keys can decrypt ${object}: it is encrypted to key id(s) ${wanted.join(', ')}, the key given has ${have.join(', ')}`,
    'use a reader key of this repository (--key FILE or KLUIS_READER_KEY); a reader added later can read only chunks written after it was added',
  )
}
