/**
 * The few OpenPGP packet framing rules (RFC 9580 §4.2) that the chunk cipher needs. We only
 * write definite lengths; the reader also accepts old-format headers. Partial lengths are
 * reported so the caller can hand such messages to openpgp.js instead.
 */

export const PacketTag = {
  PublicKeyEncryptedSessionKey: 1,
  LiteralData: 11,
  SymEncryptedIntegrityProtectedData: 18,
  ModificationDetectionCode: 19,
} as const

export interface Packet {
  tag: number
  /** Offset of the whole packet (header included) in the input. */
  start: number
  /** The packet body. */
  body: Buffer
}

/** A new-format packet header with a five-octet length, which fits every size we write. */
export function packetHeader(tag: number, bodyLength: number): Buffer {
  const header = Buffer.alloc(6)
  header[0] = 0xc0 | tag
  header[1] = 0xff
  header.writeUInt32BE(bodyLength, 2)
  return header
}

export class PacketFormatError extends Error {}

/** Splits a message into packets. Throws PacketFormatError for what we do not handle. */
export function parsePackets(data: Buffer): Packet[] {
  const packets: Packet[] = []
  let offset = 0
  while (offset < data.length) {
    const start = offset
    const first = data[offset++] as number
    if ((first & 0x80) === 0) throw new PacketFormatError('not an OpenPGP packet')
    let tag: number
    let length: number
    if (first & 0x40) {
      tag = first & 0x3f
      const octet = need(data, offset, 1)[0] as number
      if (octet < 192) {
        length = octet
        offset += 1
      } else if (octet < 224) {
        length = ((octet - 192) << 8) + (need(data, offset, 2)[1] as number) + 192
        offset += 2
      } else if (octet === 255) {
        length = need(data, offset, 5).readUInt32BE(1)
        offset += 5
      } else {
        throw new PacketFormatError('partial body lengths')
      }
    } else {
      tag = (first >> 2) & 0x0f
      const lengthType = first & 0x03
      if (lengthType === 3) throw new PacketFormatError('indeterminate length')
      const size = 1 << lengthType
      const bytes = need(data, offset, size)
      length =
        size === 1
          ? (bytes[0] as number)
          : size === 2
            ? bytes.readUInt16BE(0)
            : bytes.readUInt32BE(0)
      offset += size
    }
    const body = need(data, offset, length)
    offset += length
    packets.push({ tag, start, body })
  }
  return packets
}

function need(data: Buffer, offset: number, length: number): Buffer {
  if (offset + length > data.length) throw new PacketFormatError('truncated packet')
  return data.subarray(offset, offset + length)
}
