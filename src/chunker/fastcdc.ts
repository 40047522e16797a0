import { createHmac } from 'node:crypto'

/**
 * Content-defined chunking, FastCDC style (Xia et al., 2016/2020): a gear rolling hash over
 * the last 32 bytes, a stricter mask before the average size and a looser one after it
 * ("normalized chunking"), hard limits at min and max. Cut points depend only on content, so
 * an edit in the middle of a stream changes only the chunks around it.
 *
 * The gear table is derived from the key group's secret dedup key, so chunk boundaries (and
 * therefore chunk sizes visible in storage) do not reveal content to someone without the key.
 */

export interface ChunkerParameters {
  min: number
  avg: number
  max: number
}

export const defaultChunkerParameters: ChunkerParameters = {
  min: 512 * 1024,
  avg: 1024 * 1024,
  max: 8 * 1024 * 1024,
}

/**
 * The 256 gear values: the first four bytes (big-endian) of HMAC-SHA256(secret, "kluis gear i").
 * Held as signed 32-bit integers: V8 keeps those unboxed, which makes the hot loop ~2.5× faster
 * than unsigned values above 2^31. The bit patterns, and so the cut points, are the same.
 */
export function gearTable(secret: Buffer): Int32Array {
  const table = new Int32Array(256)
  for (let i = 0; i < 256; i++) {
    table[i] = createHmac('sha256', secret).update(`kluis gear ${i}`).digest().readInt32BE(0)
  }
  return table
}

/** Masks on the high bits of a 32-bit gear hash: bit k depends on the last k+1 bytes. */
function highMask(bits: number): number {
  return (0xffffffff << (32 - bits)) | 0
}

export function validateParameters(p: ChunkerParameters): string | undefined {
  const isPow2 = (n: number) => Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0
  if (!isPow2(p.avg)) return 'avg must be a power of two'
  if (!(p.min >= 64 && p.min < p.avg && p.avg < p.max))
    return 'sizes must satisfy 64 <= min < avg < max'
  if (p.max > 64 * 1024 * 1024) return 'max must be at most 64 MiB'
  return undefined
}

export class Chunker {
  private readonly maskStrict: number
  private readonly maskLoose: number

  constructor(
    private readonly gear: Int32Array,
    private readonly params: ChunkerParameters,
  ) {
    const bits = Math.log2(params.avg)
    this.maskStrict = highMask(bits + 2)
    this.maskLoose = highMask(bits - 2)
  }

  /** Length of the first chunk of `data` (data.length when the data ends before a cut). */
  cut(data: Uint8Array): number {
    const { min, avg, max } = this.params
    let end = data.length
    if (end <= min) return end
    if (end > max) end = max
    const normal = Math.min(end, avg)
    const { gear, maskStrict, maskLoose } = this
    let hash = 0
    let i = min
    for (; i < normal; i++) {
      hash = ((hash << 1) + (gear[data[i] as number] as number)) | 0
      if ((hash & maskStrict) === 0) return i + 1
    }
    for (; i < end; i++) {
      hash = ((hash << 1) + (gear[data[i] as number] as number)) | 0
      if ((hash & maskLoose) === 0) return i + 1
    }
    return end
  }

  /**
   * Splits a byte stream into chunks. Gathers a few average chunks' worth of bytes, then yields
   * every chunk whose end is already certain: a cut found before the end of the data at hand is
   * the cut the whole stream would give, since a cut depends only on the bytes before it. Only
   * the undecided tail is carried over, so each byte is copied about once, and a chunk in flight
   * keeps only a small parent buffer alive. When no cut is found, the next attempt waits for
   * twice as much data (up to `max`), so a long chunk is not rescanned piece by piece.
   */
  async *chunks(source: AsyncIterable<Uint8Array>): AsyncGenerator<Buffer> {
    const { avg, max } = this.params
    const gather = Math.min(max, 2 * avg)
    let pending: Buffer[] = []
    let pendingLength = 0
    let wanted = gather
    for await (const piece of source) {
      if (piece.length === 0) continue
      pending.push(
        Buffer.isBuffer(piece) ? piece : Buffer.from(piece.buffer, piece.byteOffset, piece.length),
      )
      pendingLength += piece.length
      if (pendingLength < wanted) continue
      let buffer = Buffer.concat(pending, pendingLength)
      for (;;) {
        const length = this.cut(buffer)
        if (length === buffer.length && length < max) break // undecided: wait for more data
        yield buffer.subarray(0, length)
        buffer = buffer.subarray(length)
      }
      pending = buffer.length > 0 ? [buffer] : []
      pendingLength = buffer.length
      wanted = Math.min(max, Math.max(gather, 2 * pendingLength))
    }
    let rest = Buffer.concat(pending, pendingLength)
    while (rest.length > 0) {
      const length = this.cut(rest)
      yield rest.subarray(0, length)
      rest = rest.subarray(length)
    }
  }
}
