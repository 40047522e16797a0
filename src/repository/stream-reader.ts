import { createHash } from 'node:crypto'
import { mapOrdered } from '../core/concurrency.js'
import { IntegrityError } from '../core/errors.js'
import type { ChunkOpener } from '../crypto/chunk-cipher.js'
import { decodeChunk } from './chunk-codec.js'
import type { IndexStream } from './format.js'
import type { Repository } from './repository.js'

/** Chunks fetched, decrypted and decompressed ahead of the consumer. */
const READ_AHEAD = 4

/**
 * A stored stream as bytes, in order. Every chunk is checked (MDC, HMAC against the signed
 * index) before it is yielded; the whole stream's size and SHA-256 are checked against the
 * signed manifest before the iterator finishes, so a consumer that waits for the end never
 * accepts a wrong stream.
 */
export async function* readStream(
  repository: Repository,
  opener: ChunkOpener,
  dedupKey: Buffer,
  stream: IndexStream,
  expected: { size: number; sha256: string },
  label: string,
): AsyncGenerator<Buffer> {
  const hash = createHash('sha256')
  let size = 0
  const chunks = mapOrdered(stream.chunks, READ_AHEAD, async ([id, plainSize]) => {
    const message = await repository.getChunk(id)
    return decodeChunk(message, id, plainSize, opener, dedupKey)
  })
  for await (const plaintext of chunks) {
    hash.update(plaintext)
    size += plaintext.length
    yield plaintext
  }
  const sha256 = hash.digest('hex')
  if (size !== expected.size || sha256 !== expected.sha256) {
    throw new IntegrityError(
      label,
      'restored stream does not match the SHA-256 in the signed manifest',
    )
  }
}
