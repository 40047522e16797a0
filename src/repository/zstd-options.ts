import { constants, type ZstdOptions } from 'node:zlib'

/**
 * zstd settings for one chunk. One output buffer for the whole frame: Node's default 16 KiB
 * pieces halve zstd's speed through the thread-pool round trips. A frame checksum lets
 * `zstd -d` in the emergency recipe detect damage too.
 */
export function compressOptions(level: number, size: number): ZstdOptions {
  return {
    chunkSize: Math.max(64 * 1024, size + 1024),
    params: { [constants.ZSTD_c_compressionLevel]: level, [constants.ZSTD_c_checksumFlag]: 1 },
  }
}

/** The plaintext size comes from the signed index: never inflate past it. */
export function decompressOptions(size: number): ZstdOptions {
  return { maxOutputLength: Math.max(size, 1), chunkSize: Math.max(64 * 1024, size) }
}
