import { createHash, randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import {
  Chunker,
  defaultChunkerParameters,
  gearTable,
  validateParameters,
} from '../src/chunker/fastcdc.js'

const params = { min: 4 * 1024, avg: 16 * 1024, max: 64 * 1024 }
const chunker = new Chunker(gearTable(Buffer.alloc(32, 7)), params)

function deterministic(size: number, seed: string): Buffer {
  const out = Buffer.alloc(size)
  let block = createHash('sha256').update(seed).digest()
  for (let offset = 0; offset < size; offset += 32) {
    block.copy(out, offset)
    block = createHash('sha256').update(block).digest()
  }
  return out
}

async function chunksOf(data: Buffer, pieceSize: number, c = chunker): Promise<Buffer[]> {
  async function* pieces() {
    for (let offset = 0; offset < data.length; offset += pieceSize)
      yield data.subarray(offset, offset + pieceSize)
  }
  const out: Buffer[] = []
  for await (const chunk of c.chunks(pieces())) out.push(Buffer.from(chunk))
  return out
}

const ids = (chunks: Buffer[]) => chunks.map((c) => createHash('sha256').update(c).digest('hex'))

describe('content-defined chunker', () => {
  const data = deterministic(4 * 1024 * 1024, 'chunker')

  it('reassembles to the input, respects min and max, and averages near avg', async () => {
    const chunks = await chunksOf(data, 65_536)
    expect(Buffer.concat(chunks).equals(data)).toBe(true)
    for (const chunk of chunks.slice(0, -1)) {
      expect(chunk.length).toBeGreaterThanOrEqual(params.min)
      expect(chunk.length).toBeLessThanOrEqual(params.max)
    }
    const average = data.length / chunks.length
    expect(average).toBeGreaterThan(params.avg * 0.6)
    expect(average).toBeLessThan(params.avg * 1.6)
  })

  it('cuts the same way whatever the read sizes', async () => {
    expect(ids(await chunksOf(data, 1000))).toEqual(ids(await chunksOf(data, 1 << 20)))
  })

  it('an insertion in the middle changes only the chunks around it', async () => {
    const middle = data.length / 2
    const edited = Buffer.concat([
      data.subarray(0, middle),
      Buffer.from('inserted bytes'),
      data.subarray(middle),
    ])
    const before = new Set(ids(await chunksOf(data, 65_536)))
    const after = ids(await chunksOf(edited, 65_536))
    const changed = after.filter((id) => !before.has(id)).length
    expect(changed).toBeGreaterThan(0)
    expect(changed).toBeLessThanOrEqual(2)
  })

  it('cuts at max in data without any boundary (a run of zeros)', async () => {
    const zeros = Buffer.alloc(300 * 1024)
    const chunks = await chunksOf(zeros, 4096)
    expect(chunks.slice(0, -1).every((c) => c.length === params.max)).toBe(true)
  })

  it('depends on the secret: another dedup key gives other boundaries', async () => {
    const other = new Chunker(gearTable(randomBytes(32)), params)
    expect(ids(await chunksOf(data, 65_536, other))).not.toEqual(ids(await chunksOf(data, 65_536)))
  })

  it('validates parameters', () => {
    expect(validateParameters(defaultChunkerParameters)).toBeUndefined()
    expect(validateParameters({ min: 1024, avg: 3000, max: 8192 })).toContain('power of two')
    expect(validateParameters({ min: 8192, avg: 4096, max: 16384 })).toContain('min < avg < max')
  })
})
