import * as openpgp from 'openpgp'
import { errorMessage, IntegrityError } from '../core/errors.js'
import { noMatchingKey } from './key-errors.js'
import type { PrivateKey, PublicKey } from './keys.js'

/**
 * Signed and encrypted objects other than chunks (index, manifest, dedup keys). These are few
 * per snapshot, so openpgp.js does the whole job. Trust is never taken from the repository:
 * every signature is checked against the writer key the user configured.
 */

/** A cleartext-signed text (RFC 9580 §7) that `gpg --verify` checks. */
export async function signCleartext(text: string, writer: PrivateKey): Promise<string> {
  const message = await openpgp.createCleartextMessage({ text })
  return openpgp.sign({ message, signingKeys: writer, format: 'armored' })
}

/** Returns the signed text; throws IntegrityError naming `object` if the signature is not the writer's. */
export async function verifyCleartext(
  armored: string,
  writer: PublicKey,
  object: string,
): Promise<string> {
  let message: openpgp.CleartextMessage
  try {
    message = await openpgp.readCleartextMessage({ cleartextMessage: armored })
  } catch {
    throw new IntegrityError(object, 'is not a signed OpenPGP cleartext message')
  }
  const result = await openpgp.verify({ message, verificationKeys: writer, format: 'utf8' })
  await checkSignatures(result.signatures, object)
  return result.data as string
}

export async function encryptAndSign(
  data: Uint8Array,
  readers: PublicKey[],
  writer: PrivateKey,
): Promise<Uint8Array> {
  const message = await openpgp.createMessage({ binary: data })
  return openpgp.encrypt({
    message,
    encryptionKeys: readers,
    signingKeys: writer,
    format: 'binary',
    config: { aeadProtect: false },
  })
}

/**
 * The same as an ASCII-armored message, for files kept in git: `comment` goes in the armor's
 * Comment header, which gpg shows and ignores.
 */
export async function encryptAndSignArmored(
  data: Uint8Array,
  readers: PublicKey[],
  writer: PrivateKey,
  comment: string,
): Promise<string> {
  const message = await openpgp.createMessage({ binary: data })
  return openpgp.encrypt({
    message,
    encryptionKeys: readers,
    signingKeys: writer,
    format: 'armored',
    config: { aeadProtect: false, showComment: true, commentString: comment },
  })
}

/**
 * Decrypts (a binary or an armored message), then requires a valid signature by the trusted
 * writer; names `object` on failure.
 */
export async function decryptAndVerify(
  data: Uint8Array | string,
  decryptionKeys: PrivateKey[],
  writer: PublicKey,
  object: string,
): Promise<Uint8Array> {
  let message: openpgp.Message<Uint8Array>
  try {
    message =
      typeof data === 'string'
        ? await openpgp.readMessage({ armoredMessage: data })
        : await openpgp.readMessage({ binaryMessage: data })
  } catch {
    throw new IntegrityError(object, 'is not a readable OpenPGP message')
  }
  let result: openpgp.DecryptMessageResult & { data: Uint8Array }
  try {
    result = await openpgp.decrypt({
      message,
      decryptionKeys,
      verificationKeys: writer,
      format: 'binary',
    })
  } catch (error) {
    const text = errorMessage(error)
    if (/no decryption key|session key/i.test(text))
      throw noMatchingKey(message, object, decryptionKeys)
    throw new IntegrityError(object, `failed to decrypt: ${text}`)
  }
  await checkSignatures(result.signatures, object)
  return result.data
}

async function checkSignatures(
  signatures: openpgp.VerifyMessageResult['signatures'],
  object: string,
): Promise<void> {
  if (signatures.length === 0) throw new IntegrityError(object, 'is not signed', untrustedHint)
  for (const signature of signatures) {
    try {
      await signature.verified
      return
    } catch {
      // try the next signature; one valid signature by the writer is enough
    }
  }
  throw new IntegrityError(
    object,
    'is not signed by the trusted writer key (or was modified)',
    untrustedHint,
  )
}

const untrustedHint =
  'the object was changed or planted in storage; keys.writer-public in the configuration decides whom to trust'
