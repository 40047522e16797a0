import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

/**
 * A fake S3 on loopback for what s3rver does not do (conditional writes, object lock, aborting
 * multipart uploads, faults): every request is recorded, and `handle` answers it.
 */
export interface Seen {
  method: string
  path: string
  headers: IncomingHttpHeaders
  body: Buffer
}
export type Handler = (request: Seen, response: ServerResponse) => void

export interface Fake {
  endpoint: string
  seen: Seen[]
  handle: Handler
  close(): Promise<void>
}

export async function startFake(): Promise<Fake> {
  const fake: Fake = {
    endpoint: '',
    seen: [],
    handle: (_, response) => reply(response, 500, 'InternalError'),
    close: () => new Promise((resolve) => server.close(() => resolve())),
  }
  const server: Server = createServer((request, response) => {
    const chunks: Buffer[] = []
    request.on('data', (chunk: Buffer) => chunks.push(chunk))
    request.on('end', () => {
      const seen = {
        method: request.method ?? '',
        path: request.url ?? '',
        headers: request.headers,
        body: Buffer.concat(chunks),
      }
      fake.seen.push(seen)
      fake.handle(seen, response)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  fake.endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  return fake
}

export function reply(
  response: ServerResponse,
  status: number,
  code?: string,
  extra: Record<string, string> = {},
  headers: Record<string, string> = {},
): void {
  const fields = Object.entries(extra)
    .map(([name, value]) => `<${name}>${value}</${name}>`)
    .join('')
  const body = code
    ? `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>${code} message</Message>${fields}<RequestId>req-1</RequestId></Error>`
    : ''
  response.writeHead(status, {
    ...(body ? { 'content-type': 'application/xml' } : {}),
    'content-length': String(Buffer.byteLength(body)),
    ...headers,
  })
  response.end(body)
}
