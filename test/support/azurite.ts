import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync, rmSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { stopChild } from './processes.js'

/** Azurite's well-known development account (public, documented by Microsoft). */
export const AZURITE_ACCOUNT = 'devstoreaccount1'
export const AZURITE_KEY =
  'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='

export interface Azurite {
  connectionString: string
  accountName: string
  accountKey: string
  /** http://127.0.0.1:PORT/devstoreaccount1 */
  blobEndpoint: string
  /** Stops the server and removes its folder; safe to call twice. */
  stop(): Promise<void>
}

/**
 * Starts Azurite's blob service on 127.0.0.1 on a free port (it picks one for port 0 and
 * prints it), in a temporary folder. It runs in a plain `node` process (not npx, whose killing
 * orphans the server) whose stdin is a pipe from us: when this process dies, however it dies,
 * the pipe closes and the server removes its folder and exits. An 'exit' hook kills it too.
 */
export async function startAzurite(): Promise<Azurite> {
  const require = createRequire(import.meta.url)
  const main = join(dirname(require.resolve('azurite/package.json')), 'dist/src/blob/main.js')
  if (!existsSync(main)) throw new Error(`Azurite's blob server is not at ${main}: npm install`)
  const dir = await mkdtemp(join(tmpdir(), 'kluis-azurite-'))
  // Azurite reads its options from process.argv[2…]: put its script path where it expects it.
  const boot = [
    "process.stdin.on('end', () => {",
    `require('node:fs').rmSync(${JSON.stringify(dir)}, { recursive: true, force: true });`,
    'process.exit(0) }); process.stdin.resume();',
    `process.argv.splice(1, 0, ${JSON.stringify(main)}); import(${JSON.stringify(main)});`,
  ].join(' ')
  const child = spawn(
    process.execPath,
    [
      '-e',
      boot,
      '--',
      '--blobHost',
      '127.0.0.1',
      '--blobPort',
      '0',
      '--location',
      dir,
      '--silent',
      '--disableTelemetry',
      '--skipApiVersionCheck',
    ],
    { stdio: ['pipe', 'pipe', 'pipe'] },
  )
  const killOnExit = () => {
    child.kill('SIGKILL')
    rmSync(dir, { recursive: true, force: true })
  }
  process.once('exit', killOnExit)

  let stopping: Promise<void> | undefined
  const stop = () => {
    stopping ??= (async () => {
      process.off('exit', killOnExit)
      await stopChild(child)
      await rm(dir, { recursive: true, force: true })
    })()
    return stopping
  }

  try {
    const url = await listening(child)
    const blobEndpoint = `${url}/${AZURITE_ACCOUNT}`
    await answers(blobEndpoint)
    return {
      connectionString: `DefaultEndpointsProtocol=http;AccountName=${AZURITE_ACCOUNT};AccountKey=${AZURITE_KEY};BlobEndpoint=${blobEndpoint};`,
      accountName: AZURITE_ACCOUNT,
      accountKey: AZURITE_KEY,
      blobEndpoint,
      stop,
    }
  } catch (error) {
    await stop()
    throw error
  }
}

/** The URL Azurite says it listens on, once it says so (it has bound the port by then). */
function listening(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let output = ''
    const timer = setTimeout(() => fail(new Error('Azurite did not start within 30 s')), 30_000)
    const fail = (error: Error) => {
      clearTimeout(timer)
      reject(new Error(`${error.message}\n${output}`))
    }
    const read = (data: Buffer) => {
      output += data.toString()
      const url = /successfully listens on (http:\/\/127\.0\.0\.1:\d+)/.exec(output)?.[1]
      if (url) {
        clearTimeout(timer)
        child.stdout?.off('data', read)
        child.stdout?.resume()
        resolve(url)
      }
    }
    child.stdout?.on('data', read)
    child.stderr?.on('data', (data: Buffer) => {
      output += data.toString()
    })
    child.once('error', fail)
    child.once('exit', (code, signal) =>
      fail(new Error(`Azurite exited before listening (${signal ?? `code ${code}`})`)),
    )
  })
}

/** Waits until the service answers HTTP (any status: an unsigned request gets 403). */
async function answers(endpoint: string): Promise<void> {
  const deadline = Date.now() + 10_000
  for (;;) {
    try {
      await fetch(`${endpoint}?comp=list`, { signal: AbortSignal.timeout(2000) })
      return
    } catch (error) {
      if (Date.now() > deadline) throw error
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }
}
