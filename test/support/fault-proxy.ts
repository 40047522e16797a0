import { createServer, type IncomingMessage, request, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'

/** What the proxy does to one request instead of forwarding it. */
export type Fault =
  /** The connection is dropped before any answer. */
  | 'reset'
  /** The body is read, then the connection is dropped: the upload "arrived" only half-way. */
  | 'reset-after-body'
  /** An HTTP 500 or 503 with an S3-style error body. */
  | 'error-500'
  | 'error-503'
  /** Throttling: HTTP 503 SlowDown. */
  | 'slow-down'
  /** The request is accepted and never answered: the client must time out and retry. */
  | 'stall'

export interface FaultProxy {
  /** http://127.0.0.1:PORT, to use as the storage endpoint. */
  url: string
  /** Faults injected so far, by kind. */
  injected: Map<Fault, number>
  /** Requests seen so far. */
  requests: number
  /** Decides the fault for each request (or none); can be replaced while running. */
  decide: (request: IncomingMessage, count: number) => Fault | undefined
  /**
   * Answers a request in the server's place (returns true), for what the server behind does
   * not implement; can be replaced while running.
   */
  answer: (request: IncomingMessage, response: ServerResponse) => boolean
  stop(): Promise<void>
}

/**
 * An HTTP reverse proxy between kluis and a storage server that injects network faults, so a
 * test can check that transient failures are retried and that a backup interrupted by them
 * either completes or fails cleanly.
 */
export async function startFaultProxy(target: string): Promise<FaultProxy> {
  const upstream = new URL(target)
  const sockets = new Set<Socket>()
  const proxy: FaultProxy = {
    url: '',
    injected: new Map(),
    requests: 0,
    decide: () => undefined,
    answer: () => false,
    stop: async () => {
      for (const socket of sockets) socket.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
  const server = createServer((incoming, outgoing) => {
    proxy.requests++
    if (proxy.answer(incoming, outgoing)) return
    const fault = proxy.decide(incoming, proxy.requests)
    if (fault) proxy.injected.set(fault, (proxy.injected.get(fault) ?? 0) + 1)
    switch (fault) {
      case 'reset':
        incoming.socket.destroy()
        return
      case 'reset-after-body':
        incoming.resume()
        incoming.once('end', () => incoming.socket.destroy())
        return
      case 'error-500':
      case 'error-503':
      case 'slow-down': {
        const [status, code] =
          fault === 'error-500'
            ? [500, 'InternalError']
            : fault === 'error-503'
              ? [503, 'ServiceUnavailable']
              : [503, 'SlowDown']
        incoming.resume()
        incoming.once('end', () => {
          outgoing.writeHead(status, { 'content-type': 'application/xml' })
          outgoing.end(
            `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>injected by the test</Message></Error>`,
          )
        })
        return
      }
      case 'stall':
        incoming.resume() // read the body, answer never
        return
      default: {
        const forwarded = request(
          {
            host: upstream.hostname,
            port: upstream.port,
            method: incoming.method,
            path: incoming.url,
            headers: incoming.headers,
          },
          (answer) => {
            outgoing.writeHead(answer.statusCode ?? 502, answer.headers)
            answer.pipe(outgoing)
          },
        )
        forwarded.on('error', () => incoming.socket.destroy())
        incoming.pipe(forwarded)
      }
    }
  })
  server.on('connection', (socket) => {
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  proxy.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  return proxy
}

/** A seeded random fault plan: the same seed gives the same faults for the same requests. */
export function randomFaults(
  seed: number,
  rates: Partial<Record<Fault, number>>,
  only: (request: IncomingMessage) => boolean = () => true,
): (request: IncomingMessage) => Fault | undefined {
  let state = seed >>> 0 || 1
  const next = () => {
    // xorshift32
    state ^= state << 13
    state ^= state >>> 17
    state ^= state << 5
    return (state >>> 0) / 2 ** 32
  }
  return (request) => {
    if (!only(request)) return undefined
    let roll = next()
    for (const [fault, rate] of Object.entries(rates) as Array<[Fault, number]>) {
      if (roll < rate) return fault
      roll -= rate
    }
    return undefined
  }
}
