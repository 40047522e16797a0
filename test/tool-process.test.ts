import { spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { redactor } from '../src/core/redact.js'
import {
  feedTool,
  runTool,
  type ToolCommand,
  toolEnvironment,
  toolOutput,
} from '../src/sources/database/tool-process.js'

/** How dump and restore tools are run: failures are loud, secrets never shown, nothing half-fed. */
describe('database tool processes', () => {
  const secret = 'p@ss:w/rd%+ é'
  let dir: string
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kluis-tool-'))
  })
  afterAll(() => rm(dir, { recursive: true, force: true }))

  function shell(script: string, label = 'test tool'): ToolCommand {
    return {
      path: '/bin/sh',
      args: ['-c', script],
      env: { PATH: process.env.PATH },
      label,
      redact: redactor([secret]),
    }
  }

  async function drain(stream: AsyncIterable<Buffer>): Promise<number> {
    let size = 0
    for await (const piece of stream) size += piece.length
    return size
  }

  it('streams a tool’s output and fails the stream with its stderr, secrets masked', async () => {
    expect(await drain(toolOutput(shell('head -c 3000000 /dev/zero')))).toBe(3_000_000)
    const failing = toolOutput(
      shell(`echo some output; echo "connect failed for '${secret}'" >&2; exit 3`, 'pg_dump of x'),
    )
    const error = await drain(failing).then(
      () => undefined,
      (e: Error) => e,
    )
    expect(error?.message).toContain('pg_dump of x exited with code 3')
    expect(error?.message).toContain("connect failed for '***'")
    expect(error?.message).not.toContain(secret)
    expect(error?.message).not.toContain(encodeURIComponent(secret))
  })

  it('fails a stream whose tool is killed by a signal after writing part of it', async () => {
    await expect(drain(toolOutput(shell('head -c 100000 /dev/zero; kill -9 $$')))).rejects.toThrow(
      'test tool was killed by SIGKILL',
    )
  })

  it('kills the tool when the reader stops early', async () => {
    const marker = `kluis-marker-${randomBytes(6).toString('hex')}`
    for await (const _ of toolOutput(shell(`exec yes ${marker}`))) break
    await expect.poll(() => spawnSync('pgrep', ['-f', marker]).status).toBe(1)
  })

  it('kills a restore tool before it sees the end of a stream that failed', async () => {
    const out = join(dir, 'fed')
    const done = join(dir, 'finished')
    async function* failingStream(): AsyncGenerator<Buffer> {
      yield Buffer.alloc(1024 * 1024, 1)
      await new Promise((resolve) => setTimeout(resolve, 50))
      throw new Error('chunk 1234 does not verify')
    }
    await expect(
      feedTool(shell(`cat > '${out}' && echo finished > '${done}'`), failingStream()),
    ).rejects.toThrow('chunk 1234 does not verify')
    // cat never saw end-of-file, so the step after it never ran.
    await expect(readFile(done)).rejects.toThrow()
  })

  it('reports a restore tool that exits early instead of a broken pipe', async () => {
    async function* large(): AsyncGenerator<Buffer> {
      for (let i = 0; i < 64; i++) yield Buffer.alloc(1024 * 1024, 2)
    }
    await expect(
      feedTool(
        shell('head -c 10 > /dev/null; echo "bad archive" >&2; exit 4', 'pg_restore'),
        large(),
      ),
    ).rejects.toThrow(/pg_restore exited with code 4:\n {2}bad archive/)
    await expect(feedTool(shell('head -c 10 > /dev/null'), large())).rejects.toThrow(
      'stopped reading the dump before its end',
    )
  })

  it('runs a tool with input, and names a tool that cannot start', async () => {
    expect((await runTool(shell('tr a-z A-Z'), 'select 1')).stdout).toBe('SELECT 1')
    await expect(runTool({ ...shell(''), path: join(dir, 'no-such-tool') })).rejects.toThrow(
      /cannot run .*no-such-tool/,
    )
  })

  it('gives tools the environment without kluis key material', () => {
    const env = toolEnvironment(
      { PATH: '/bin', KLUIS_WRITER_KEY: 'key', KLUIS_READER_PASSPHRASE: 'pw', PGPASSWORD: 'old' },
      { PGPASSWORD: 'new', PGAPPNAME: undefined },
    )
    expect(env).toEqual({ PATH: '/bin', PGPASSWORD: 'new' })
  })
})
