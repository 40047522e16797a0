import { createHmac, timingSafeEqual } from 'node:crypto'
import { promisify } from 'node:util'
import { zstdCompress, zstdDecompress } from 'node:zlib'
import { IntegrityError } from '../core/errors.js'
import type { ChunkOpener, ChunkSealer } from '../crypto/chunk-cipher.js'
import { objectNames } from './format.js'
import { compressOptions, decompressOptions } from './zstd-options.js'

// The callback forms run in libuv's thread pool, so several chunks (de)compress in parallel.
const compress = promisify(zstdCompress)
const decompress = promisify(zstdDecompress)

/** Chunk id: hex HMAC-SHA256 of the plaintext under the key group's dedup key. */
export function chunkId(dedupKey: Buffer, plaintext: Uint8Array): string {
  return createHmac('sha256', dedupKey).update(plaintext).digest('hex')
}

/** plaintext → zstd frame → OpenPGP message. */
export async function encodeChunk(
  plaintext: Buffer,
  sealer: ChunkSealer,
  level: number,
): Promise<Buffer> {
  return sealer.seal(await compress(plaintext, compressOptions(level, plaintext.length)))
}

/**
 * OpenPGP message → zstd frame → plaintext, then the plaintext's HMAC must equal the id the
 * signed index names. Any mismatch throws IntegrityError naming the chunk object.
 */
export async function decodeChunk(
  message: Buffer,
  id: string,
  size: number,
  opener: ChunkOpener,
  dedupKey: Buffer,
): Promise<Buffer> {
  const object = objectNames.chunk(id)
  const frame = await opener.open(message, object)
  let plaintext: Buffer
  try {
    plaintext = await decompress(frame, decompressOptions(size))
  } catch (error) {
    throw new IntegrityError(object, `does not decompress (${(error as Error).message})`)
  }
  const actual = Buffer.from(chunkId(dedupKey, plaintext), 'hex')
  if (plaintext.length !== size || !timingSafeEqual(actual, Buffer.from(id, 'hex'))) {
    throw new IntegrityError(object, 'content does not match its id (HMAC mismatch)')
  }
  return plaintext
}
