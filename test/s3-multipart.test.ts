import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import type { IncomingMessage } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CreateMultipartUploadCommand, S3Client } from '@aws-sdk/client-s3'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { MemoryReporter } from '../src/core/reporter.js'
import { Repository } from '../src/repository/repository.js'
import { S3Storage } from '../src/storage/s3.js'
import { abortUnfinishedUploads } from '../src/storage/s3-multipart.js'
import { MultipartJournal, unfinishedUploads } from '../src/storage/s3-multipart-journal.js'
import { runPostStep, startAction } from './support/action-runner.js'
import { type Fake, type Handler, reply, startFake } from './support/fake-s3.js'
import { type FaultProxy, startFaultProxy } from './support/fault-proxy.js'
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
 * Large objects go to S3 in parts. An upload that is never completed or aborted keeps its
 * parts in the bucket, billed and invisible to listings, so kluis aborts its own unfinished
 * uploads when interrupted, and the action's post step aborts those a killed run left behind,
 * from a journal the run kept: exactly those, never another job's.
 */

const useCredentials = useAwsCredentials
afterAll(restoreAwsVariables)

const MiB = 1024 * 1024
const uploadIdOf = (url: string | undefined) =>
  new URL(url ?? '/', 'http://x').searchParams.get('uploadId') ?? ''

describe('the multipart journal (against a fake S3)', () => {
  let fake: Fake
  let dir: string
  const secret = 'kluisTestSecret/DoNotPrint+77aa'
  beforeAll(async () => {
    fake = await startFake()
    useCredentials('AKIAFAKE', secret)
  })
  afterAll(() => fake.close())
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  /** Multipart answers; `part` and `complete` decide how parts and the completion end. */
  function multipart(outcome: { part?: number; complete?: number } = {}): Handler {
    let uploads = 0
    return (request, response) => {
      const query = new URL(request.path, 'http://x').searchParams
      if (request.method === 'HEAD') return reply(response, 404)
      if (request.method === 'POST' && query.has('uploads')) {
        response.writeHead(200, { 'content-type': 'application/xml' })
        return response.end(
          `<InitiateMultipartUploadResult><Bucket>bucket</Bucket><Key>k</Key><UploadId>u${++uploads}</UploadId></InitiateMultipartUploadResult>`,
        )
      }
      if (request.method === 'PUT' && query.has('partNumber')) {
        if (outcome.part) return reply(response, outcome.part, 'AccessDenied')
        return reply(response, 200, undefined, {}, { etag: `"p${query.get('partNumber')}"` })
      }
      if (request.method === 'POST' && query.has('uploadId')) {
        if (outcome.complete) return reply(response, outcome.complete, 'PreconditionFailed')
        response.writeHead(200, { 'content-type': 'application/xml' })
        return response.end(
          '<CompleteMultipartUploadResult><Bucket>bucket</Bucket><Key>k</Key><ETag>"e"</ETag></CompleteMultipartUploadResult>',
        )
      }
      if (request.method === 'DELETE' && query.has('uploadId')) return reply(response, 204)
      reply(response, 400, 'Unexpected')
    }
  }

  const journalLines = async (path: string) =>
    (await readFile(path, 'utf8'))
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, unknown>)

  it('records each upload from its creation until it is completed or aborted', async () => {
    dir = await mkdtemp(join(tmpdir(), 'kluis-journal-'))
    const journal = join(dir, 'uploads.jsonl')
    const storage = S3Storage.fromUrl(
      's3://bucket/repo',
      { endpoint: fake.endpoint, pathStyle: true, region: 'eu-west-1' },
      { KLUIS_MULTIPART_JOURNAL: journal },
    )
    const data = randomBytes(17 * MiB)

    fake.handle = multipart()
    expect(await storage.putIfAbsent('snapshots/a.manifest.pgp', data)).toBe(true)
    // Completion refused (the object exists): lib-storage aborts the upload.
    fake.handle = multipart({ complete: 412 })
    expect(await storage.putIfAbsent('snapshots/b.manifest.pgp', data)).toBe(false)
    // A part refused for good: the upload is aborted and the write fails.
    fake.handle = multipart({ part: 403 })
    await expect(storage.putIfAbsent('snapshots/c.manifest.pgp', data)).rejects.toThrow(
      /snapshots\/c\.manifest\.pgp/,
    )

    expect(await journalLines(journal)).toEqual([
      {
        started: {
          bucket: 'bucket',
          key: 'repo/snapshots/a.manifest.pgp',
          uploadId: 'u1',
          endpoint: fake.endpoint,
          region: 'eu-west-1',
          pathStyle: true,
        },
      },
      { finished: 'u1' },
      { started: expect.objectContaining({ key: 'repo/snapshots/b.manifest.pgp' }) },
      { finished: 'u1' },
      { started: expect.objectContaining({ key: 'repo/snapshots/c.manifest.pgp' }) },
      { finished: 'u1' },
    ])
    expect(unfinishedUploads(journal)).toEqual([])
  })

  it('aborts what the journal lists as unfinished, and nothing else', async () => {
    dir = await mkdtemp(join(tmpdir(), 'kluis-journal-'))
    const path = join(dir, 'uploads.jsonl')
    const journal = new MultipartJournal(path)
    const reach = { endpoint: fake.endpoint, region: 'us-east-1', pathStyle: true }
    const upload = (id: string) => ({
      bucket: 'bucket',
      key: `repo/chunks/${id}`,
      uploadId: id,
      ...reach,
    })
    journal.started(upload('open'))
    journal.started(upload('completed'))
    journal.started(upload('gone')) // completed, but the kill came before the journal heard
    journal.started(upload('forbidden'))
    journal.finished('completed')
    await writeFile(path, `${await readFile(path, 'utf8')}{"started":{"bu`) // torn by a kill

    fake.seen = []
    fake.handle = (request, response) => {
      const id = uploadIdOf(request.path)
      if (request.method !== 'DELETE') return reply(response, 400, 'Unexpected')
      if (id === 'gone') return reply(response, 404, 'NoSuchUpload')
      if (id === 'forbidden') return reply(response, 403, 'AccessDenied')
      reply(response, 204)
    }
    const reporter = new MemoryReporter()
    await abortUnfinishedUploads(path, reporter, process.env)

    expect(fake.seen.map((s) => `${s.method} ${uploadIdOf(s.path)}`).sort()).toEqual([
      'DELETE forbidden',
      'DELETE gone',
      'DELETE open',
    ])
    expect(reporter.infos).toEqual([
      'aborted the unfinished multipart upload of s3://bucket/repo/chunks/open',
    ])
    expect(reporter.warnings).toHaveLength(1)
    expect(reporter.warnings[0]).toContain('s3://bucket/repo/chunks/forbidden')
    expect(reporter.warnings[0]).toContain('upload id forbidden')
    expect(reporter.warnings[0]).toContain('lifecycle rule')
    expect(reporter.warnings[0]).not.toContain(secret)
  })

  it('has nothing to do without a journal', async () => {
    dir = await mkdtemp(join(tmpdir(), 'kluis-journal-'))
    fake.seen = []
    await abortUnfinishedUploads(join(dir, 'none.jsonl'), new MemoryReporter())
    expect(fake.seen).toEqual([])
  })
})

/**
 * The action backs up to s3rver through a proxy that holds every multipart completion, so the
 * uploads of the backup's large chunks stay open; then the job is cancelled (SIGINT) or killed
 * (SIGKILL). s3rver does not implement AbortMultipartUpload, so the proxy answers those
 * requests itself (204, as S3 does) and records them.
 */
describe('the action leaves no unfinished multipart upload behind', () => {
  let server: S3Server
  let proxy: FaultProxy
  let project: Project | undefined
  let runnerTemp: string | undefined
  let bucket = 0
  const held: string[] = []
  const aborted: string[] = []

  beforeAll(async () => {
    useCredentials(s3rverAccessKey, s3rverSecretKey)
    server = await startS3rver()
    proxy = await startFaultProxy(server.endpoint)
    const completion = (request: IncomingMessage) =>
      request.method === 'POST' && uploadIdOf(request.url) !== ''
    proxy.decide = (request) => {
      if (!completion(request)) return undefined
      held.push(uploadIdOf(request.url))
      return 'stall'
    }
    proxy.answer = (request, response) => {
      if (request.method !== 'DELETE' || uploadIdOf(request.url) === '') return false
      aborted.push(uploadIdOf(request.url))
      request.resume()
      response.writeHead(204).end()
      return true
    }
  }, 60_000)

  afterAll(async () => {
    await proxy?.stop()
    await server?.stop()
  })

  afterEach(async () => {
    await project?.cleanup()
    if (runnerTemp) await rm(runnerTemp, { recursive: true, force: true })
    held.length = 0
    aborted.length = 0
  })

  /** A project whose repository cuts chunks of 17–40 MiB: each goes up in parts. */
  async function prepare(): Promise<{ name: string }> {
    const name = `uploads-${++bucket}`
    project = await createProject({
      config: exampleConfig.replace(
        'repository: file://./backup-repo',
        `repository: s3://${name}/repo\nstorage: { endpoint: "${proxy.url}", path-style: true, region: us-east-1, timeout: 60 }`,
      ),
    })
    await writeFile(join(project.dir, 'data', 'uploads', 'video.bin'), randomBytes(40 * MiB))
    const storage = S3Storage.fromUrl(
      `s3://${name}/repo`,
      { endpoint: server.endpoint, pathStyle: true, region: 'us-east-1' },
      {},
    )
    await storage.create()
    await Repository.init(storage, { min: 17 * MiB, avg: 32 * MiB, max: 40 * MiB })
    const init = await project.run(['init'])
    expect(init.code, init.stderr).toBe(0)
    return { name }
  }

  async function until(condition: () => boolean, what: string): Promise<void> {
    for (let waited = 0; !condition(); waited += 50) {
      if (waited > 30_000) throw new Error(`timed out waiting for ${what}`)
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }

  it('aborts its open uploads itself when the job is cancelled', async () => {
    await prepare()
    const action = await startAction(project?.dir ?? '', { command: 'backup' })
    runnerTemp = action.runnerTemp
    await until(() => held.length > 0, 'a multipart completion')
    const { scratch } = await action.state()
    const journal = join(scratch ?? '', 'multipart-uploads.jsonl')
    const started = unfinishedUploads(journal).map((upload) => upload.uploadId)
    expect(started).toEqual(expect.arrayContaining(held))

    action.child.kill('SIGINT')
    const run = await action.finished

    expect(run.code, run.stdout + run.stderr).toBe(130)
    expect(aborted.sort()).toEqual([...started].sort())
    expect(unfinishedUploads(journal)).toEqual([])
    // The post step finds nothing left to abort and removes the folder.
    const post = await runPostStep(run.state)
    expect(post.code, post.stdout + post.stderr).toBe(0)
    expect(aborted).toHaveLength(started.length)
    expect(existsSync(scratch ?? '')).toBe(false)
  })

  it("the post step aborts a killed run's open uploads, and not another job's", async () => {
    const { name } = await prepare()
    const action = await startAction(project?.dir ?? '', { command: 'backup' })
    runnerTemp = action.runnerTemp
    await until(() => held.length > 0, 'a multipart completion')
    action.child.kill('SIGKILL')
    const run = await action.finished
    expect(run.signal).toBe('SIGKILL')
    expect(aborted).toEqual([])
    const scratch = run.state.scratch ?? ''
    const left = unfinishedUploads(join(scratch, 'multipart-uploads.jsonl'))
    expect(left.map((upload) => upload.uploadId)).toEqual(expect.arrayContaining(held))

    // Another job's upload into the same bucket, in progress.
    const other = new S3Client({
      endpoint: server.endpoint,
      forcePathStyle: true,
      region: 'us-east-1',
    })
    const { UploadId: othersUpload } = await other.send(
      new CreateMultipartUploadCommand({ Bucket: name, Key: 'repo/chunks/other-job' }),
    )
    other.destroy()
    expect(othersUpload).toBeTruthy()

    const post = await runPostStep(run.state)

    expect(post.code, post.stdout + post.stderr).toBe(0)
    expect(aborted.sort(), post.stdout + post.stderr).toEqual(
      left.map((upload) => upload.uploadId).sort(),
    )
    expect(aborted).not.toContain(othersUpload)
    for (const upload of left) {
      expect(post.stdout).toContain(
        `aborted the unfinished multipart upload of s3://${name}/${upload.key}`,
      )
    }
    expect(existsSync(scratch)).toBe(false)
  })
})
