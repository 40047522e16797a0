import { randomBytes } from 'node:crypto'
import * as openpgp from 'openpgp'
import { beforeAll, describe, expect, it } from 'vitest'
import { IntegrityError, KeyError } from '../src/core/errors.js'
import { ChunkOpener, ChunkSealer } from '../src/crypto/chunk-cipher.js'
import { generateKey, type PrivateKey, type PublicKey } from '../src/crypto/keys.js'

describe('chunk cipher', () => {
  let readerPublic: PublicKey
  let readerPrivate: PrivateKey
  let strangerPrivate: PrivateKey
  beforeAll(async () => {
    const reader = await generateKey({ name: 'reader', kind: 'ecc' })
    const stranger = await generateKey({ name: 'stranger', kind: 'ecc' })
    readerPublic = await openpgp.readKey({ armoredKey: reader.publicArmored })
    readerPrivate = await openpgp.readPrivateKey({ armoredKey: reader.privateArmored })
    strangerPrivate = await openpgp.readPrivateKey({ armoredKey: stranger.privateArmored })
  })

  it('round-trips, and each message stands alone with its own random prefix', async () => {
    const sealer = await ChunkSealer.create([readerPublic])
    const plaintext = randomBytes(100_000)
    const first = sealer.seal(plaintext)
    const second = sealer.seal(plaintext)
    expect(first.equals(second)).toBe(false)
    const opener = new ChunkOpener([readerPrivate])
    expect((await opener.open(first, 'a')).equals(plaintext)).toBe(true)
    expect((await opener.open(second, 'b')).equals(plaintext)).toBe(true)
  })

  it('openpgp.js reads our messages as ordinary OpenPGP messages', async () => {
    const sealer = await ChunkSealer.create([readerPublic])
    const message = await openpgp.readMessage({
      binaryMessage: sealer.seal(Buffer.from('standard')),
    })
    const { data } = await openpgp.decrypt({
      message,
      decryptionKeys: readerPrivate,
      format: 'binary',
    })
    expect(Buffer.from(data).toString()).toBe('standard')
  })

  it('reads a message that openpgp.js wrote itself (the general path)', async () => {
    const message = await openpgp.createMessage({ binary: Buffer.from('from the library') })
    const encrypted = await openpgp.encrypt({
      message,
      encryptionKeys: readerPublic,
      format: 'binary',
    })
    const opened = await new ChunkOpener([readerPrivate]).open(Buffer.from(encrypted), 'library')
    expect(opened.toString()).toBe('from the library')
  })

  it('names the object when a byte of the ciphertext is flipped', async () => {
    const sealer = await ChunkSealer.create([readerPublic])
    const message = sealer.seal(randomBytes(5000))
    for (const position of [message.length - 1, message.length - 100, message.length - 4000]) {
      const tampered = Buffer.from(message)
      tampered[position] = (tampered[position] as number) ^ 0x80
      const error = await new ChunkOpener([readerPrivate])
        .open(tampered, 'chunks/ab/abc')
        .catch((e) => e)
      expect(error).toBeInstanceOf(IntegrityError)
      expect(error.message).toMatch(/^chunks\/ab\/abc: /)
    }
  })

  it('a key that is not a reader gets a KeyError naming the key ids', async () => {
    const sealer = await ChunkSealer.create([readerPublic])
    const error = await new ChunkOpener([strangerPrivate])
      .open(sealer.seal(Buffer.from('x')), 'chunks/cd/cde')
      .catch((e) => e)
    expect(error).toBeInstanceOf(KeyError)
    expect(error.message).toContain('chunks/cd/cde')
    expect(error.message).toContain(readerPublic.getKeys()[1]?.getKeyID().toHex().toUpperCase())
  })
})
