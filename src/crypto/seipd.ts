import {
  createCipheriv,
  createDecipheriv,
  createHash,
  randomBytes,
  timingSafeEqual,
} from 'node:crypto'
import { IntegrityError } from '../core/errors.js'
import { PacketTag, packetHeader, parsePackets } from './packets.js'

/**
 * The symmetric half of a chunk message: a SEIPDv1 packet (RFC 9580 §5.13.1) holding one
 * literal data packet, with AES-256 in CFB mode and the SHA-1 modification detection code.
 * Pure Node crypto: fast, and a small surface that gpg and sq check in the interop tests.
 */

export interface SealingKey {
  /** The AES-256 session key. */
  sessionKey: Buffer
  /** The PKESK packets that carry the session key to each reader. */
  keyPackets: Buffer
}

const BLOCK = 16
const MDC_HEADER = Buffer.from([0xd3, 0x14]) // new-format tag 19, length 20
const LITERAL_PREFIX = Buffer.from([0x62, 0, 0, 0, 0, 0]) // binary, no file name, date 0
const ZERO_IV = Buffer.alloc(BLOCK)

/** A complete OpenPGP message: the key packets, then the encrypted literal data. */
export function sealMessage({ sessionKey, keyPackets }: SealingKey, plaintext: Buffer): Buffer {
  const literalHeader = packetHeader(
    PacketTag.LiteralData,
    LITERAL_PREFIX.length + plaintext.length,
  )
  // A random first block, its last two bytes repeated: each message's own CFB starting point.
  const random = randomBytes(BLOCK)
  const prefix = Buffer.concat([random, random.subarray(BLOCK - 2)])
  const mdc = createHash('sha1')
    .update(prefix)
    .update(literalHeader)
    .update(LITERAL_PREFIX)
    .update(plaintext)
    .update(MDC_HEADER)
    .digest()
  const cipher = createCipheriv('aes-256-cfb', sessionKey, ZERO_IV)
  const parts = [
    cipher.update(prefix),
    cipher.update(literalHeader),
    cipher.update(LITERAL_PREFIX),
    cipher.update(plaintext),
    cipher.update(MDC_HEADER),
    cipher.update(mdc),
    cipher.final(),
  ]
  const bodyLength = 1 + parts.reduce((sum, part) => sum + part.length, 0)
  return Buffer.concat([
    keyPackets,
    packetHeader(PacketTag.SymEncryptedIntegrityProtectedData, bodyLength),
    Buffer.from([1]),
    ...parts,
  ])
}

export function decryptSeipdV1(body: Buffer, sessionKey: Buffer, object: string): Buffer {
  if (body[0] !== 1)
    throw new IntegrityError(object, `has an unsupported encrypted data version ${body[0]}`)
  const decipher = createDecipheriv('aes-256-cfb', sessionKey, ZERO_IV)
  const plain = Buffer.concat([decipher.update(body.subarray(1)), decipher.final()])
  const prefixLength = BLOCK + 2
  if (plain.length < prefixLength + 22) throw new IntegrityError(object, 'is truncated')
  const mdcStart = plain.length - 22
  const expected = createHash('sha1')
    .update(plain.subarray(0, mdcStart + 2))
    .digest()
  const mdcOk =
    plain[mdcStart] === 0xd3 &&
    plain[mdcStart + 1] === 0x14 &&
    timingSafeEqual(expected, plain.subarray(mdcStart + 2))
  if (!mdcOk) {
    throw new IntegrityError(
      object,
      'was modified: its OpenPGP integrity check (MDC) does not match',
    )
  }
  const inner = parsePackets(plain.subarray(prefixLength, mdcStart))
  const literal = inner[0]
  if (inner.length !== 1 || !literal || literal.tag !== PacketTag.LiteralData) {
    throw new IntegrityError(object, 'does not hold a single literal data packet')
  }
  const nameLength = literal.body[1] as number
  return literal.body.subarray(2 + nameLength + 4)
}
