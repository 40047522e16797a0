import { type LookupAddress, lookup } from 'node:dns'
import http from 'node:http'
import https from 'node:https'
import type { LookupFunction, Socket } from 'node:net'

/**
 * The HTTP agent for the Azure SDK, for two things its retry policy does not do:
 * - A request that makes no progress for `idleMs` is abandoned: the socket is destroyed with
 *   ETIMEDOUT, which the SDK retries. (`tryTimeoutInMs` only asks the *server* to give up; a
 *   stalled connection would otherwise hang for ever.) Uploads and downloads both count as
 *   progress, so a large but moving transfer is never cut.
 * - A host name that does not exist (a mistyped account) fails at once instead of being retried
 *   for a minute like a dropped connection: the SDK retries anything that mentions ENOTFOUND.
 *   A DNS server that does not answer (EAI_AGAIN) is retried.
 * Behind HTTPS_PROXY the SDK uses its proxy agent instead, and neither applies.
 */
export function azureAgent(protocol: string, idleMs: number): http.Agent {
  const options = { keepAlive: true, timeout: idleMs, lookup: permanentNotFound }
  const agent = protocol === 'https:' ? new https.Agent(options) : new http.Agent(options)
  const create = agent.createConnection.bind(agent) as (
    ...args: Parameters<http.Agent['createConnection']>
  ) => Socket | null | undefined
  agent.createConnection = (connectOptions, callback) => {
    const socket = create(connectOptions, callback)
    socket?.setTimeout(idleMs)
    socket?.on('timeout', () => {
      const error = new Error(`no progress for ${Math.round(idleMs / 1000)} s (ETIMEDOUT)`)
      // An idle socket in the agent's pool has no request to tell: close it quietly.
      if (socket.listenerCount('error') > 0)
        socket.destroy(Object.assign(error, { code: 'ETIMEDOUT' }))
      else socket.destroy()
    })
    return socket
  }
  return agent
}

type LookupCallback = (
  error: NodeJS.ErrnoException | null,
  address: string | LookupAddress[],
  family?: number,
) => void

const permanentNotFound = ((hostname: string, options: object, callback: LookupCallback) => {
  lookup(hostname, { ...options }, ((error, address, family) => {
    if (error?.code === 'ENOTFOUND') {
      // Worded so that the SDK's retry policy, which matches "ENOTFOUND" in messages, gives up.
      const missing = new Error(`the host name ${hostname} does not exist (DNS)`)
      callback(Object.assign(missing, { code: 'ENOSUCHHOST' }), '')
      return
    }
    if (error?.code === 'EAI_AGAIN') {
      const busy = new Error(`the DNS lookup of ${hostname} timed out (EAI_AGAIN)`)
      callback(Object.assign(busy, { code: 'ETIMEDOUT' }), '')
      return
    }
    callback(error, address, family)
  }) as LookupCallback)
}) as unknown as LookupFunction
