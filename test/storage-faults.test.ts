import { createHash, randomBytes } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  type Fault,
  type FaultProxy,
  randomFaults,
  startFaultProxy,
} from './support/fault-proxy.js'
import { createProject, exampleConfig, type Project } from './support/project.js'
import {
  restoreAwsVariables,
  type S3Server,
  s3rverAccessKey,
  s3rverSecretKey,
  startS3rver,
  useAwsCredentials,
} from './support/s3-server.js'

/**
 * A flaky network between kluis and its storage: an HTTP proxy in front of s3rver drops
 * connections, answers 500/503/SlowDown and stalls requests. Transient faults are retried; a
 * backup that cannot get through fails cleanly, writes no snapshot, and the next one reuses
 * the chunks that did arrive.
 */
describe('backups through a flaky network (S3 behind a fault-injecting proxy)', () => {
  let server: S3Server
  let proxy: FaultProxy
  let project: Project

  const sha256 = async (file: string) =>
    createHash('sha256')
      .update(await readFile(file))
      .digest('hex')

  async function snapshotCount(): Promise<number> {
    const listed = await project.run(['snapshots', '--json'])
    expect(listed.code, listed.stderr).toBe(0)
    return (JSON.parse(listed.stdout) as unknown[]).length
  }

  beforeAll(async () => {
    useAwsCredentials(s3rverAccessKey, s3rverSecretKey)
    server = await startS3rver()
    proxy = await startFaultProxy(server.endpoint)
    project = await createProject({
      config: exampleConfig.replace(
        'repository: file://./backup-repo',
        // A stalled request is given up after 1.5 s without progress, then retried.
        `repository: s3://flaky/repo\nstorage: { endpoint: "${proxy.url}", path-style: true, region: us-east-1, timeout: 1.5 }`,
      ),
    })
    // Several chunks per file, so that some can arrive and others not.
    await writeFile(join(project.dir, 'data', 'uploads', 'first.bin'), randomBytes(6 * 1024 * 1024))
    const init = await project.run(['init'])
    expect(init.code, init.stderr).toBe(0)
  }, 60_000)

  afterAll(async () => {
    await proxy?.stop()
    await server?.stop()
    await project?.cleanup()
    restoreAwsVariables()
  })

  it('retries dropped connections, server errors, throttling and stalls; the backup is whole', async () => {
    // Every third request gets the next kind of fault in turn, then random ones on top.
    const kinds: Fault[] = [
      'stall',
      'reset',
      'reset-after-body',
      'error-500',
      'error-503',
      'slow-down',
    ]
    const random = randomFaults(20261125, { reset: 0.05, 'error-503': 0.05 })
    proxy.decide = (request, count) =>
      count % 3 === 0 ? kinds[(count / 3) % kinds.length] : random(request)
    const backup = await project.run(['backup', '--json'])
    proxy.decide = () => undefined
    expect(backup.stderr).not.toContain('kluis:')
    expect(backup.code).toBe(0)
    for (const kind of kinds) expect(proxy.injected.get(kind) ?? 0, kind).toBeGreaterThan(0)

    const checked = await project.run(['check', '--read-data', '--key', 'keys/reader.key'])
    expect(checked.code, checked.stdout + checked.stderr).toBe(0)
    const restored = await project.run(['restore', '--target', 'out', '--key', 'keys/reader.key'])
    expect(restored.code, restored.stderr).toBe(0)
    expect(await sha256(join(project.dir, 'out', 'uploads', 'first.bin'))).toBe(
      await sha256(join(project.dir, 'data', 'uploads', 'first.bin')),
    )
  }, 120_000)

  it('fails cleanly when the storage goes away mid-backup; the next backup reuses what arrived', async () => {
    await writeFile(
      join(project.dir, 'data', 'uploads', 'second.bin'),
      randomBytes(8 * 1024 * 1024),
    )
    const before = await snapshotCount()
    // Three chunk uploads get through, then every request's connection is dropped.
    let chunkPuts = 0
    proxy.decide = (request) => {
      if (chunkPuts >= 3) return 'reset'
      if (request.method === 'PUT' && request.url?.includes('/chunks/')) chunkPuts++
      return undefined
    }
    const failed = await project.run(['backup'])
    proxy.decide = () => undefined
    expect(failed.code).toBe(1)
    const errors = failed.stderr.split('\n').filter((line) => line.startsWith('kluis:'))
    expect(errors).toHaveLength(1)
    expect(errors[0]).toContain('s3://flaky/repo')
    expect(failed.stderr).not.toMatch(/\n\s+at .+:\d+:\d+/) // no stack trace
    expect(await snapshotCount()).toBe(before)

    const checked = await project.run(['check'])
    expect(checked.code, checked.stdout + checked.stderr).toBe(0)
    const next = await project.run(['backup', '--json'])
    expect(next.code, next.stderr).toBe(0)
    const uploads = (
      JSON.parse(next.stdout) as { sources: Array<{ name: string; dataAdded: number }> }
    ).sources.find((s) => s.name === 'uploads')
    // The chunks that arrived before the failure are not uploaded again.
    expect(uploads?.dataAdded).toBeLessThan(8 * 1024 * 1024)
    expect(await snapshotCount()).toBe(before + 1)
  }, 180_000)

  it('restores and checks with credentials that may only read: a warning, and no lock', async () => {
    // Every write is refused, as with a read-only IAM policy or SAS.
    const refused: string[] = []
    proxy.answer = (request, response) => {
      if (request.method !== 'PUT' && request.method !== 'DELETE' && request.method !== 'POST') {
        return false
      }
      refused.push(`${request.method} ${request.url}`)
      request.resume()
      response.writeHead(403, { 'content-type': 'application/xml' })
      response.end(
        '<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>',
      )
      return true
    }
    try {
      const restored = await project.run([
        'restore',
        '--source',
        'uploads',
        '--target',
        'read-only-restore',
        '--key',
        'keys/reader.key',
      ])
      expect(restored.code, restored.stderr).toBe(0)
      expect(restored.stderr).toMatch(
        /restore runs without a repository lock, which it could not write \(.*AccessDenied/,
      )
      expect(await sha256(join(project.dir, 'read-only-restore', 'uploads', 'first.bin'))).toBe(
        await sha256(join(project.dir, 'data', 'uploads', 'first.bin')),
      )
      const checked = await project.run(['check'])
      expect(checked.code, checked.stdout + checked.stderr).toBe(0)
      expect(checked.stdout + checked.stderr).toContain('check runs without a repository lock')
      expect(refused.some((r) => r.includes('/locks/'))).toBe(true)
    } finally {
      proxy.answer = () => false
    }
  }, 60_000)
})
