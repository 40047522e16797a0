import { type ChildProcess, spawn } from 'node:child_process'
import { rmSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { stopChild } from './processes.js'

/**
 * A throwaway s3rver on 127.0.0.1, for integration tests. It knows one access key id, S3RVER
 * (secret S3RVER), and does not verify V4 signatures: any secret key passes with that key id.
 */
export interface S3Server {
  /** http://127.0.0.1:PORT */
  endpoint: string
  /** Stops the server and removes its folder; safe to call twice. */
  stop(): Promise<void>
}

export const s3rverAccessKey = 'S3RVER'
export const s3rverSecretKey = 'S3RVER'

const bin = join(
  dirname(createRequire(import.meta.url).resolve('s3rver/package.json')),
  'bin',
  's3rver.js',
)

/**
 * s3rver's bin runs under this Node directly (killing an `npx` wrapper would orphan it) and
 * with --openssl-legacy-provider (without it ListObjectsV2 paging answers 500). Port 0: the
 * server picks a free port and prints it. The child exits when its stdin closes, so even a test
 * process that is killed outright leaves no server behind.
 */
export async function startS3rver(): Promise<S3Server> {
  const dir = await mkdtemp(join(tmpdir(), 'kluis-s3rver-'))
  // Loaded before the bin: when the test process goes away, remove the folder and exit.
  const watchParent = `data:text/javascript,${encodeURIComponent(
    [
      'import { rmSync } from "node:fs"',
      'const bye = () => { rmSync(process.env.KLUIS_S3RVER_DIR, { recursive: true, force: true }); process.exit(0) }',
      'process.stdin.on("end", bye).on("error", bye).resume()',
    ].join('\n'),
  )}`
  const child = spawn(
    process.execPath,
    [
      '--openssl-legacy-provider',
      '--import',
      watchParent,
      bin,
      '--directory',
      dir,
      '--address',
      '127.0.0.1',
      '--port',
      '0',
      '--silent',
    ],
    { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, KLUIS_S3RVER_DIR: dir } },
  )
  const stopSync = () => {
    child.kill('SIGKILL')
    rmSync(dir, { recursive: true, force: true, maxRetries: 3 })
  }
  running.set(dir, stopSync)
  try {
    const port = await listeningPort(child)
    let stopping: Promise<void> | undefined
    return {
      endpoint: `http://127.0.0.1:${port}`,
      stop: () => {
        stopping ??= (async () => {
          running.delete(dir)
          await stopChild(child)
          await rm(dir, { recursive: true, force: true, maxRetries: 3 })
        })()
        return stopping
      },
    }
  } catch (error) {
    running.delete(dir)
    stopSync()
    throw error
  }
}

function listeningPort(child: ChildProcess): Promise<number> {
  return new Promise((resolve, reject) => {
    let stdout = ''
    let stderr = ''
    const timer = setTimeout(() => fail('did not start within 20 s'), 20_000)
    const fail = (why: string) => {
      clearTimeout(timer)
      reject(new Error(`s3rver ${why}\n${stderr.slice(-2000)}`))
    }
    child.stderr?.on('data', (data: Buffer) => {
      stderr += data.toString()
    })
    child.stdout?.on('data', (data: Buffer) => {
      stdout += data.toString()
      const port = /listening on [^\s:]+:(\d+)/.exec(stdout)?.[1]
      if (port) {
        clearTimeout(timer)
        // Keep draining its output so a full pipe never blocks the server.
        child.stdout?.resume()
        resolve(Number(port))
      }
    })
    child.once('error', (error) => fail(`could not be started: ${error.message}`))
    child.once('exit', (code, signal) => fail(`exited (${signal ?? code}) before listening`))
  })
}

/** Servers a test never stopped; killed when the process exits so none outlive the run. */
const running = new Map<string, () => void>()

process.on('exit', () => {
  for (const stop of running.values()) {
    try {
      stop()
    } catch {
      // Best effort while exiting.
    }
  }
})

const AWS_VARIABLES = [
  'AWS_ACCESS_KEY_ID',
  'AWS_SECRET_ACCESS_KEY',
  'AWS_SESSION_TOKEN',
  'AWS_PROFILE',
]

/**
 * The SDK's default credential chain reads process.env (not the env kluis is given), so tests
 * set credentials there. The first call remembers the variables as they were, and
 * restoreAwsVariables (for afterAll) puts them back.
 */
let savedAwsVariables: Record<string, string | undefined> | undefined
export function useAwsCredentials(accessKey: string, secretKey: string): void {
  savedAwsVariables ??= Object.fromEntries(AWS_VARIABLES.map((name) => [name, process.env[name]]))
  process.env.AWS_ACCESS_KEY_ID = accessKey
  process.env.AWS_SECRET_ACCESS_KEY = secretKey
  delete process.env.AWS_SESSION_TOKEN
  delete process.env.AWS_PROFILE
}

export function restoreAwsVariables(): void {
  if (!savedAwsVariables) return
  for (const [name, value] of Object.entries(savedAwsVariables)) {
    if (value === undefined) delete process.env[name]
    else process.env[name] = value
  }
  savedAwsVariables = undefined
}
