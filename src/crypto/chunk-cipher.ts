import { createHash, randomBytes } from 'node:crypto'
import * as openpgp from 'openpgp'
import { errorMessage, IntegrityError } from '../core/errors.js'
import { noMatchingKey } from './key-errors.js'
import type { PrivateKey, PublicKey } from './keys.js'
import { PacketFormatError, PacketTag, parsePackets } from './packets.js'
import { decryptSeipdV1, type SealingKey, sealMessage } from './seipd.js'

/**
 * One standalone OpenPGP message per chunk: the session-key packets (PKESK v3) followed by one
 * SEIPDv1 packet holding a literal data packet. gpg 2.2 and sq read it as any other message.
 *
 * Wrapping a session key for a reader costs milliseconds (X25519 in JS), so a ChunkSealer wraps
 * one random AES-256 session key per snapshot and key group, and reuses those key packets for
 * every chunk it seals. Each message still has its own random CFB prefix (RFC 9580 §5.13.1),
 * which is what makes reusing the key safe. The symmetric part (seipd.ts) uses Node's native
 * AES and SHA-1.
 */

export class ChunkSealer {
  private constructor(private readonly key: SealingKey) {}

  static async create(readers: PublicKey[]): Promise<ChunkSealer> {
    const sessionKey = randomBytes(32)
    const keyPackets = await openpgp.encryptSessionKey({
      data: sessionKey,
      algorithm: 'aes256',
      encryptionKeys: readers,
      format: 'binary',
      config: { aeadProtect: false },
    })
    return new ChunkSealer({ sessionKey, keyPackets: Buffer.from(keyPackets) })
  }

  /** Returns a complete OpenPGP message whose literal data is `plaintext`. */
  seal(plaintext: Buffer): Buffer {
    return sealMessage(this.key, plaintext)
  }
}

/**
 * Opens chunk messages with a reader's private key. Session keys are unwrapped once per
 * distinct set of key packets (one per snapshot and group) and cached.
 */
export class ChunkOpener {
  private readonly sessionKeys = new Map<string, Promise<Buffer>>()

  constructor(private readonly decryptionKeys: PrivateKey[]) {}

  /** Decrypts and checks the MDC; throws IntegrityError naming `object` on any mismatch. */
  async open(message: Buffer, object: string): Promise<Buffer> {
    let packets: ReturnType<typeof parsePackets>
    try {
      packets = parsePackets(message)
    } catch (error) {
      if (error instanceof PacketFormatError && error.message === 'partial body lengths') {
        return this.openWithLibrary(message, object)
      }
      throw new IntegrityError(object, `is not a readable OpenPGP message (${errorMessage(error)})`)
    }
    const data = packets.at(-1)
    const keyPackets = packets.slice(0, -1)
    if (
      !data ||
      data.tag !== PacketTag.SymEncryptedIntegrityProtectedData ||
      keyPackets.length === 0 ||
      keyPackets.some((packet) => packet.tag !== PacketTag.PublicKeyEncryptedSessionKey)
    ) {
      return this.openWithLibrary(message, object)
    }
    const keyBytes = message.subarray(0, data.start)
    const sessionKey = await this.sessionKey(keyBytes, object)
    return decryptSeipdV1(data.body, sessionKey, object)
  }

  private sessionKey(keyPackets: Buffer, object: string): Promise<Buffer> {
    const cacheKey = createHash('sha256').update(keyPackets).digest('hex')
    let pending = this.sessionKeys.get(cacheKey)
    if (!pending) {
      pending = this.unwrap(keyPackets, object)
      this.sessionKeys.set(cacheKey, pending)
      pending.catch(() => this.sessionKeys.delete(cacheKey))
    }
    return pending
  }

  private async unwrap(keyPackets: Buffer, object: string): Promise<Buffer> {
    const message = await openpgp.readMessage({ binaryMessage: keyPackets })
    let keys: openpgp.DecryptedSessionKey[]
    try {
      keys = await openpgp.decryptSessionKeys({ message, decryptionKeys: this.decryptionKeys })
    } catch {
      throw noMatchingKey(message, object, this.decryptionKeys)
    }
    const key = keys[0]
    if (key?.algorithm !== 'aes256') {
      throw new IntegrityError(
        object,
        `uses session key algorithm ${key?.algorithm}, expected aes256`,
      )
    }
    return Buffer.from(key.data)
  }

  /** Anything not shaped like our own chunks goes through openpgp.js in full. */
  private async openWithLibrary(message: Buffer, object: string): Promise<Buffer> {
    let parsed: openpgp.Message<Uint8Array>
    try {
      parsed = await openpgp.readMessage({ binaryMessage: message })
    } catch (error) {
      throw new IntegrityError(object, `is not a readable OpenPGP message (${errorMessage(error)})`)
    }
    try {
      const result = await openpgp.decrypt({
        message: parsed,
        decryptionKeys: this.decryptionKeys,
        format: 'binary',
      })
      return Buffer.from(result.data)
    } catch (error) {
      if (/decryption key|session key/i.test(errorMessage(error)))
        throw noMatchingKey(parsed, object, this.decryptionKeys)
      throw new IntegrityError(object, `failed to decrypt (${errorMessage(error)})`)
    }
  }
}
