import { type ChildProcess, execFile, spawn, spawnSync } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** Where Debian/Ubuntu (and most distributions) install git's CGI program. */
export const gitHttpBackend = '/usr/lib/git-core/git-http-backend'

/** One request the server answered, for tests that check what the client sent. */
export interface GitRequest {
  method: string
  /** The URL path, e.g. /backups.git/info/refs */
  path: string
  /** The query string without '?', e.g. service=git-receive-pack */
  query: string
  /** Whether the request carried the token (always false when the server has no token). */
  authorized: boolean
}

export interface GitHttpServer {
  /** http://127.0.0.1:PORT/REPO (https:// with `tls`) */
  url(repo: string): string
  /** With `tls`: the self-signed certificate, for GIT_SSL_CAINFO. */
  caFile?: string
  stop(): Promise<void>
  requests: GitRequest[]
}

export interface GitHttpServerOptions {
  /** The folder that holds the bare repositories (GIT_PROJECT_ROOT). */
  root: string
  /**
   * When set, every request must carry `Authorization: Basic base64(USER:TOKEN)` (any user,
   * as GitHub accepts `x-access-token`), else 401 with a Basic challenge.
   */
  token?: string
  /** Serve https with a fresh self-signed certificate for 127.0.0.1 (needs openssl). */
  tls?: boolean
  /**
   * Called before a request is handed to git, after authentication; the request waits for it.
   * Lets a test act as a concurrent writer at an exact moment (e.g. before a push's ref
   * advertisement).
   */
  beforeRequest?: (request: GitRequest) => void | Promise<void>
}

/**
 * A small git smart-HTTP server on 127.0.0.1 (a free port): `git http-backend` run as CGI for
 * each request, optionally behind HTTP basic authentication with a token.
 */
export async function startGitHttpServer(options: GitHttpServerOptions): Promise<GitHttpServer> {
  const requests: GitRequest[] = []
  const children = new Set<ChildProcess>()
  const handler = (request: IncomingMessage, response: ServerResponse) => {
    handle(request, response).catch((error: unknown) => {
      if (!response.headersSent) response.writeHead(500, { 'Content-Type': 'text/plain' })
      response.end(`git server: ${(error as Error).message}\n`)
    })
  }

  async function handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? '/', 'http://127.0.0.1')
    const user = authenticate(request.headers.authorization, options.token)
    const record: GitRequest = {
      method: request.method ?? 'GET',
      path: url.pathname,
      query: url.search.replace(/^\?/, ''),
      authorized: user !== undefined,
    }
    requests.push(record)
    if (options.token !== undefined && user === undefined) {
      request.resume()
      response.writeHead(401, {
        'WWW-Authenticate': 'Basic realm="git"',
        'Content-Type': 'text/plain',
      })
      response.end('authentication required\n')
      return
    }
    await options.beforeRequest?.(record)

    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      GIT_PROJECT_ROOT: options.root,
      GIT_HTTP_EXPORT_ALL: '1',
      GIT_CONFIG_NOSYSTEM: '1',
      GIT_CONFIG_GLOBAL: '/dev/null',
      GATEWAY_INTERFACE: 'CGI/1.1',
      SERVER_PROTOCOL: `HTTP/${request.httpVersion}`,
      REQUEST_METHOD: record.method,
      PATH_INFO: decodeURIComponent(url.pathname),
      QUERY_STRING: record.query,
      REMOTE_ADDR: request.socket.remoteAddress ?? '127.0.0.1',
      ...(user !== undefined ? { REMOTE_USER: user || 'git', AUTH_TYPE: 'Basic' } : {}),
    }
    const header = (name: string) => {
      const value = request.headers[name]
      return Array.isArray(value) ? value.join(', ') : value
    }
    const contentType = header('content-type')
    if (contentType) env.CONTENT_TYPE = contentType
    const contentLength = header('content-length')
    if (contentLength) env.CONTENT_LENGTH = contentLength
    const encoding = header('content-encoding')
    if (encoding) env.HTTP_CONTENT_ENCODING = encoding
    const protocol = header('git-protocol')
    if (protocol) env.HTTP_GIT_PROTOCOL = protocol

    const child = spawn(gitHttpBackend, [], { env, stdio: ['pipe', 'pipe', 'pipe'] })
    children.add(child)
    let stderr = ''
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString()
    })
    child.stdin.on('error', () => {}) // the backend may exit before reading everything
    request.pipe(child.stdin)
    response.on('close', () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    })

    await new Promise<void>((resolve, reject) => {
      let head = Buffer.alloc(0)
      let inBody = false
      child.stdout.on('data', (chunk: Buffer) => {
        if (inBody) {
          response.write(chunk)
          return
        }
        head = Buffer.concat([head, chunk])
        const end = headerEnd(head)
        if (!end) return
        inBody = true
        const { status, headers } = parseCgiHeaders(head.subarray(0, end.at).toString('latin1'))
        response.writeHead(status, headers)
        const rest = head.subarray(end.at + end.length)
        if (rest.length > 0) response.write(rest)
      })
      child.on('error', reject)
      child.on('close', (code) => {
        children.delete(child)
        if (!inBody) {
          if (!response.headersSent) {
            response.writeHead(500, { 'Content-Type': 'text/plain' })
          }
          response.end(`git http-backend exited with ${code}: ${stderr}`)
        } else {
          response.end()
        }
        resolve()
      })
    })
  }

  let caFile: string | undefined
  let certificateDir: string | undefined
  let server: Server
  if (options.tls) {
    certificateDir = await mkdtemp(join(tmpdir(), 'kluis-git-tls-'))
    const { key, cert } = await selfSignedCertificate(certificateDir)
    caFile = join(certificateDir, 'cert.pem')
    server = createHttpsServer({ key, cert }, handler)
  } else {
    server = createHttpServer(handler)
  }
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve())
  })
  const { port } = server.address() as AddressInfo
  const scheme = options.tls ? 'https' : 'http'

  let stopped = false
  return {
    url: (repo) => `${scheme}://127.0.0.1:${port}/${repo.replace(/^\/+/, '')}`,
    ...(caFile ? { caFile } : {}),
    requests,
    async stop() {
      if (stopped) return
      stopped = true
      for (const child of children) child.kill('SIGKILL')
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
      if (certificateDir) await rm(certificateDir, { recursive: true, force: true })
    },
  }
}

/** The user name when the request's basic credentials carry the token; '' without a token. */
function authenticate(header: string | undefined, token: string | undefined): string | undefined {
  if (token === undefined) return undefined
  const match = /^Basic\s+(\S+)\s*$/i.exec(header ?? '')
  if (!match?.[1]) return undefined
  const decoded = Buffer.from(match[1], 'base64').toString('utf8')
  const colon = decoded.indexOf(':')
  if (colon < 0) return undefined
  return decoded.slice(colon + 1) === token ? decoded.slice(0, colon) : undefined
}

function headerEnd(head: Buffer): { at: number; length: number } | undefined {
  const crlf = head.indexOf('\r\n\r\n')
  const lf = head.indexOf('\n\n')
  if (crlf >= 0 && (lf < 0 || crlf < lf)) return { at: crlf, length: 4 }
  if (lf >= 0) return { at: lf, length: 2 }
  return undefined
}

function parseCgiHeaders(text: string): { status: number; headers: Record<string, string> } {
  let status = 200
  const headers: Record<string, string> = {}
  for (const line of text.split(/\r?\n/)) {
    const colon = line.indexOf(':')
    if (colon <= 0) continue
    const name = line.slice(0, colon).trim()
    const value = line.slice(colon + 1).trim()
    if (name.toLowerCase() === 'status') status = Number.parseInt(value, 10) || 200
    else headers[name] = value
  }
  return { status, headers }
}

async function selfSignedCertificate(dir: string): Promise<{ key: Buffer; cert: Buffer }> {
  const result = spawnSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      join(dir, 'key.pem'),
      '-out',
      join(dir, 'cert.pem'),
      '-days',
      '2',
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
    ],
    { encoding: 'utf8' },
  )
  if (result.status !== 0) throw new Error(`openssl failed: ${result.stderr || result.error}`)
  return {
    key: await readFile(join(dir, 'key.pem')),
    cert: await readFile(join(dir, 'cert.pem')),
  }
}

/** An environment for git that ignores the user's and the system's configuration. */
export function isolatedGitEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return {
    ...process.env,
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: '/dev/null',
    GIT_TERMINAL_PROMPT: '0',
    GIT_ASKPASS: '',
    SSH_ASKPASS: '',
    GIT_AUTHOR_NAME: 'Test Writer',
    GIT_AUTHOR_EMAIL: 'test@example.invalid',
    GIT_COMMITTER_NAME: 'Test Writer',
    GIT_COMMITTER_EMAIL: 'test@example.invalid',
    ...extra,
  }
}

/** Runs git in `dir` (synchronously) and returns its stdout as bytes; throws with its stderr. */
export function gitBytesIn(
  dir: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; input?: string | Buffer } = {},
): Buffer {
  const result = spawnSync('git', args, {
    cwd: dir,
    env: isolatedGitEnv(options.env),
    maxBuffer: 256 * 1024 * 1024,
    ...(options.input !== undefined ? { input: options.input } : {}),
  })
  if (result.error) throw result.error
  if (result.status !== 0) {
    throw new Error(`git ${args.join(' ')} failed (${result.status}): ${result.stderr.toString()}`)
  }
  return result.stdout
}

/**
 * Runs git in `dir` (synchronously) and returns its stdout; throws with its stderr. Blocks the
 * event loop: never for a remote served by this process (use `git`).
 */
export function gitIn(
  dir: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; input?: string | Buffer } = {},
): string {
  return gitBytesIn(dir, args, options).toString('utf8')
}

/**
 * Runs git in `dir` without blocking the event loop (needed whenever git talks to a server that
 * runs in this process) and returns its stdout; rejects with its stderr.
 */
export function git(
  dir: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv } = {},
): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      'git',
      args,
      { cwd: dir, env: isolatedGitEnv(options.env), maxBuffer: 256 * 1024 * 1024 },
      (error, stdout, stderr) => {
        if (error) reject(new Error(`git ${args.join(' ')} failed (${error.code}): ${stderr}`))
        else resolve(stdout)
      },
    )
  })
}

/**
 * A bare repository `dir/name` whose branch is `main`, that accepts pushes over HTTP (without
 * REMOTE_USER too). Returns its path.
 */
export async function createBareRepository(dir: string, name: string): Promise<string> {
  const path = join(dir, name)
  gitIn(dir, ['init', '--quiet', '--bare', '--initial-branch=main', path])
  gitIn(path, ['config', 'http.receivepack', 'true'])
  return path
}
