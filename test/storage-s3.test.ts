import { createHash, randomBytes } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ConfigError, StorageError } from '../src/core/errors.js'
import { openStorage } from '../src/storage/open.js'
import { S3Storage } from '../src/storage/s3.js'
import { ObjectNotFoundError, type StorageSettings } from '../src/storage/storage.js'
import { storageContract } from './storage-contract.js'
import { type Fake, type Handler, reply, startFake } from './support/fake-s3.js'
import { createProject, exampleConfig, type Project, sqlite } from './support/project.js'
import {
  restoreAwsVariables,
  type S3Server,
  s3rverAccessKey,
  s3rverSecretKey,
  startS3rver,
  useAwsCredentials,
} from './support/s3-server.js'

/**
 * The S3 backend against s3rver (a real protocol server on loopback) and, for what s3rver does
 * not implement (conditional writes, object lock, faults), against a tiny in-process fake.
 *
 * The SDK's default credential chain reads process.env (not the env kluis is given), so the
 * tests set AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY there and restore them afterwards.
 */
const useCredentials = useAwsCredentials
afterAll(restoreAwsVariables)

/** A secret no message may contain. */
const recognisableSecret = 'kluisTestSecret/DoNotPrint+8f3a1c9e27b4'

let server: S3Server
let buckets = 0
beforeAll(async () => {
  server = await startS3rver()
})
afterAll(() => server?.stop())

function s3rverSettings(extra: StorageSettings = {}): StorageSettings {
  return { endpoint: server.endpoint, pathStyle: true, region: 'us-east-1', ...extra }
}

async function freshStorage(prefix = 'some/prefix'): Promise<S3Storage> {
  useCredentials(s3rverAccessKey, s3rverSecretKey)
  const storage = S3Storage.fromUrl(`s3://kluis-${++buckets}/${prefix}`, s3rverSettings(), {})
  expect(await storage.create()).toBe('created')
  return storage
}

storageContract('s3 (s3rver)', () => freshStorage())

describe('s3 storage on s3rver', () => {
  it('parses s3:// URLs and says where it is without credentials', () => {
    const at = (url: string, settings: StorageSettings = {}) =>
      S3Storage.fromUrl(url, settings, {}).location
    expect(at('s3://my-bucket')).toBe('s3://my-bucket')
    expect(at('s3://my-bucket/')).toBe('s3://my-bucket')
    expect(at('s3://my-bucket/backups/app/')).toBe('s3://my-bucket/backups/app')
    expect(at('s3://b.example/x', { endpoint: 'https://key:secret@minio.local:9000' })).toBe(
      's3://b.example/x at minio.local:9000',
    )
    const bad = (url: string) => {
      try {
        S3Storage.fromUrl(url, {}, {})
      } catch (error) {
        expect(error).toBeInstanceOf(ConfigError)
        return (error as ConfigError).message
      }
      throw new Error(`${url} was accepted`)
    }
    expect(bad('s3://')).toContain('not a valid bucket name')
    expect(bad('s3://My_Bucket/x')).toContain('not a valid bucket name')
    expect(bad('s3://bucket/a//b')).toContain("empty, '.' or '..' part")
    expect(bad('s3://bucket/../x')).toContain("empty, '.' or '..' part")
    expect(bad('s3://bucket/x?versionId=1')).toContain('query')
    const withKey = bad(`s3://AKIA:${recognisableSecret}@bucket/x`)
    expect(withKey).toContain('must not contain credentials')
    expect(withKey).not.toContain(recognisableSecret)
  })

  it('is what openStorage gives for s3:// repositories, with region from the environment', async () => {
    const storage = await openStorage('s3://bucket/p', '/srv', {}, { AWS_REGION: 'eu-west-3' })
    expect(storage).toBeInstanceOf(S3Storage)
    expect(storage.location).toBe('s3://bucket/p')
    expect(storage.concurrency).toBe(8)
    expect((await openStorage('s3://bucket', '/', { concurrency: 3 }, {})).concurrency).toBe(3)
  })

  it('keeps repositories under different prefixes of one bucket apart', async () => {
    const first = await freshStorage('team/a')
    useCredentials(s3rverAccessKey, s3rverSecretKey)
    const bucket = first.location.split('/')[2]
    const second = S3Storage.fromUrl(`s3://${bucket}/team/b`, s3rverSettings(), {})
    expect(await second.create()).toBe('exists')
    await first.putIfAbsent('config.json', Buffer.from('a'))
    await second.putIfAbsent('config.json', Buffer.from('bb'))
    const names = async (storage: S3Storage) => {
      const out: string[] = []
      for await (const object of storage.list('')) out.push(`${object.name}=${object.size}`)
      return out
    }
    expect(await names(first)).toEqual(['config.json=1'])
    expect(await names(second)).toEqual(['config.json=2'])
    const root = S3Storage.fromUrl(`s3://${bucket}`, s3rverSettings(), {})
    expect((await names(root)).sort()).toEqual(['team/a/config.json=1', 'team/b/config.json=2'])
  })

  it('uploads objects above 16 MiB in parts and reads them back exactly', async () => {
    const storage = await freshStorage()
    const data = randomBytes(17 * 1024 * 1024 + 5)
    expect(await storage.putIfAbsent('snapshots/big.manifest.pgp', data)).toBe(true)
    expect(await storage.putIfAbsent('snapshots/big.manifest.pgp', data)).toBe(false)
    expect(await storage.stat('snapshots/big.manifest.pgp')).toEqual({ size: data.length })
    expect((await storage.get('snapshots/big.manifest.pgp')).equals(data)).toBe(true)
  })

  it('names a missing bucket and suggests kluis init', async () => {
    useCredentials(s3rverAccessKey, s3rverSecretKey)
    const storage = S3Storage.fromUrl('s3://kluis-missing/x', s3rverSettings(), {})
    const error = await storage.get('config.json').catch((e: unknown) => e)
    expect(error).toBeInstanceOf(StorageError)
    expect((error as StorageError).message).toContain('bucket kluis-missing does not exist')
    expect((error as StorageError).hint).toContain('kluis init')
    await expect(storage.putIfAbsent('config.json', Buffer.from('x'))).rejects.toThrow(
      'cannot write config.json to s3://kluis-missing/x at 127.0.0.1',
    )
  })

  it('reports an unknown access key once, with how the default chain finds credentials', async () => {
    useCredentials('AKIAUNKNOWN', recognisableSecret)
    const storage = S3Storage.fromUrl('s3://kluis-1/some/prefix', s3rverSettings(), {})
    const error = (await storage.get('config.json').catch((e: unknown) => e)) as StorageError
    expect(error).toBeInstanceOf(StorageError)
    expect(error.message).toBe(
      `cannot read config.json from s3://kluis-1/some/prefix at ${new URL(server.endpoint).host}: the credentials were refused (403 InvalidAccessKeyId)`,
    )
    expect(error.hint).toContain('AWS_WEB_IDENTITY_TOKEN_FILE')
    expect(`${error.message} ${error.hint}`).not.toContain(recognisableSecret)
  })

  it('answers the posture questions on s3rver without failing', async () => {
    const storage = await freshStorage()
    // s3rver answers GetBucketVersioning with a bucket listing (read as "no versioning", which is
    // true of s3rver) and GetObjectLockConfiguration with 501 NotImplemented.
    expect(await storage.posture(400)).toEqual([
      expect.stringMatching(/^versioning is not enabled on bucket kluis-\d+: /),
      expect.stringMatching(
        /^could not check object lock of bucket kluis-\d+: the service did not answer \(501 NotImplemented\)$/,
      ),
      // s3rver lets anyone delete: the probe object went away.
      expect.stringMatching(/^the credentials may delete objects in s3:\/\/kluis-\d+/),
    ])
    let probes = 0
    for await (const _ of storage.list('probes/')) probes++
    expect(probes).toBe(0)
  })
})

describe('s3 storage against a fake S3', () => {
  let fake: Fake
  beforeAll(async () => {
    fake = await startFake()
    useCredentials('AKIAFAKE', recognisableSecret)
  })
  afterAll(() => fake.close())

  const open = (settings: StorageSettings = {}) =>
    S3Storage.fromUrl(
      's3://bucket/repo',
      { endpoint: fake.endpoint, pathStyle: true, region: 'us-east-1', ...settings },
      {},
    )
  const puts = () => fake.seen.filter((s) => s.method === 'PUT')

  it('sends If-None-Match, storage class, encryption and object lock on every write', async () => {
    fake.seen = []
    fake.handle = (request, response) =>
      request.method === 'HEAD'
        ? reply(response, 404)
        : reply(response, 200, undefined, {}, { etag: '"e"' })
    const storage = open({
      storageClass: 'STANDARD_IA',
      serverSideEncryption: 'aws:kms',
      kmsKeyId: 'arn:aws:kms:eu-west-1:1:key/k',
      objectLock: { mode: 'COMPLIANCE', days: 400 },
    })
    const before = Date.now()
    expect(await storage.putIfAbsent('chunks/ab/ab12', Buffer.from('sealed chunk'))).toBe(true)
    expect(fake.seen.map((s) => `${s.method} ${s.path.split('?')[0]}`)).toEqual([
      'HEAD /bucket/repo/chunks/ab/ab12',
      'PUT /bucket/repo/chunks/ab/ab12',
    ])
    const [put] = puts()
    expect(put?.body.toString()).toBe('sealed chunk') // a plain payload, no aws-chunked framing
    expect(put?.headers).toMatchObject({
      'if-none-match': '*',
      'x-amz-storage-class': 'STANDARD_IA',
      'x-amz-server-side-encryption': 'aws:kms',
      'x-amz-server-side-encryption-aws-kms-key-id': 'arn:aws:kms:eu-west-1:1:key/k',
      'x-amz-object-lock-mode': 'COMPLIANCE',
      'x-amz-checksum-sha256': createHash('sha256').update('sealed chunk').digest('base64'),
    })
    const until = Date.parse(String(put?.headers['x-amz-object-lock-retain-until-date']))
    const day = 24 * 60 * 60 * 1000
    expect(until).toBeGreaterThanOrEqual(before + 400 * day - 1000)
    expect(until).toBeLessThanOrEqual(Date.now() + 400 * day + 1000)
  })

  it('sends none of the optional headers when nothing is configured', async () => {
    fake.seen = []
    fake.handle = (request, response) =>
      request.method === 'HEAD' ? reply(response, 404) : reply(response, 200)
    expect(await open().putIfAbsent('locks/l1', Buffer.from('x'))).toBe(true)
    const headers = Object.keys(puts()[0]?.headers ?? {})
    expect(headers).toContain('if-none-match')
    expect(headers.filter((h) => /storage-class|server-side|object-lock|checksum/.test(h))).toEqual(
      [],
    )
  })

  it('returns false when the conditional write answers 412, and skips objects HEAD finds', async () => {
    fake.seen = []
    fake.handle = (request, response) =>
      request.method === 'HEAD' ? reply(response, 404) : reply(response, 412, 'PreconditionFailed')
    expect(await open().putIfAbsent('snapshots/s1.json.asc', Buffer.from('x'))).toBe(false)
    expect(puts()).toHaveLength(1)

    fake.seen = []
    fake.handle = (_, response) => reply(response, 200, undefined, {}, { 'content-length': '1' })
    expect(await open().putIfAbsent('chunks/ab/ab12', Buffer.from('x'))).toBe(false)
    expect(puts()).toHaveLength(0)
  })

  it('uploads large objects in parts, with the condition on completion', async () => {
    const data = randomBytes(17 * 1024 * 1024 + 5)
    const multipart = (complete: 'ok' | 'exists'): Handler => {
      return (request, response) => {
        const query = new URL(request.path, 'http://x').searchParams
        if (request.method === 'HEAD') return reply(response, 404)
        if (request.method === 'POST' && query.has('uploads')) {
          response.writeHead(200, { 'content-type': 'application/xml' })
          return response.end(
            '<InitiateMultipartUploadResult><Bucket>bucket</Bucket><Key>k</Key><UploadId>u1</UploadId></InitiateMultipartUploadResult>',
          )
        }
        if (request.method === 'PUT' && query.has('partNumber')) {
          return reply(response, 200, undefined, {}, { etag: `"p${query.get('partNumber')}"` })
        }
        if (request.method === 'POST' && query.has('uploadId')) {
          if (complete === 'exists') return reply(response, 412, 'PreconditionFailed')
          response.writeHead(200, { 'content-type': 'application/xml' })
          return response.end(
            '<CompleteMultipartUploadResult><Bucket>bucket</Bucket><Key>k</Key><ETag>"e"</ETag></CompleteMultipartUploadResult>',
          )
        }
        if (request.method === 'DELETE' && query.has('uploadId')) return reply(response, 204)
        reply(response, 400, 'Unexpected')
      }
    }
    fake.seen = []
    fake.handle = multipart('ok')
    const storage = open({
      storageClass: 'GLACIER_IR',
      objectLock: { mode: 'COMPLIANCE', days: 9 },
    })
    expect(await storage.putIfAbsent('snapshots/s.manifest.pgp', data)).toBe(true)
    const create = fake.seen.find((s) => s.method === 'POST' && s.path.includes('uploads'))
    expect(create?.headers).toMatchObject({ 'x-amz-object-lock-mode': 'COMPLIANCE' })
    // A manifest must stay readable at once: the storage class is for chunks only.
    expect(create?.headers['x-amz-storage-class']).toBeUndefined()
    const parts = fake.seen.filter((s) => s.path.includes('partNumber'))
    expect(parts.length).toBe(3)
    const ordered = parts.sort(
      (a, b) =>
        Number(new URL(a.path, 'http://x').searchParams.get('partNumber')) -
        Number(new URL(b.path, 'http://x').searchParams.get('partNumber')),
    )
    expect(Buffer.concat(ordered.map((p) => p.body)).equals(data)).toBe(true)
    const completion = fake.seen.find((s) => s.method === 'POST' && s.path.includes('uploadId'))
    expect(completion?.headers['if-none-match']).toBe('*')

    fake.seen = []
    fake.handle = multipart('exists')
    expect(await open().putIfAbsent('snapshots/s.manifest.pgp', data)).toBe(false)
    expect(fake.seen.some((s) => s.method === 'DELETE' && s.path.includes('uploadId'))).toBe(true)
  })

  it('counts a write as its own when the retry of a lost answer meets the same bytes', async () => {
    fake.seen = []
    let stored: Buffer | undefined
    fake.handle = (request, response) => {
      if (request.method === 'HEAD') return reply(response, 404)
      if (request.method === 'GET') {
        response.writeHead(200, { 'content-length': String(stored?.length ?? 0) })
        return response.end(stored)
      }
      if (stored) return reply(response, 412, 'PreconditionFailed')
      stored = request.body
      response.socket?.destroy() // written, but the answer is lost
    }
    expect(await open().putIfAbsent('snapshots/s1.json.asc', Buffer.from('index'))).toBe(true)
    expect(puts()).toHaveLength(2)
  })

  it('retries a 409 ConditionalRequestConflict between writers', async () => {
    fake.seen = []
    let conflicts = 0
    fake.handle = (request, response) => {
      if (request.method === 'HEAD') return reply(response, 404)
      if (conflicts++ < 2) return reply(response, 409, 'ConditionalRequestConflict')
      reply(response, 200)
    }
    expect(await open().putIfAbsent('chunks/ab/ab12', Buffer.from('x'))).toBe(true)
    expect(puts()).toHaveLength(3)
  })

  it('falls back to HEAD + PUT where the service rejects If-None-Match, and remembers it', async () => {
    fake.seen = []
    fake.handle = (request, response) => {
      if (request.method === 'HEAD') return reply(response, 404)
      if (request.headers['if-none-match']) return reply(response, 501, 'NotImplemented')
      reply(response, 200)
    }
    const storage = open()
    expect(await storage.putIfAbsent('chunks/ab/ab01', Buffer.from('x'))).toBe(true)
    expect(await storage.putIfAbsent('chunks/ab/ab02', Buffer.from('y'))).toBe(true)
    expect(puts().map((p) => p.headers['if-none-match'] ?? 'none')).toEqual(['*', 'none', 'none'])
  })

  it('extends the retention of an object in the configured mode; a 403 names s3:PutObjectRetention', async () => {
    fake.seen = []
    fake.handle = (_request, response) => reply(response, 200)
    const storage = open({ objectLock: { mode: 'COMPLIANCE', days: 400 } })
    expect(storage.objectLockDays).toBe(400)
    const until = new Date('2028-01-02T03:04:05Z')
    await storage.extendObjectLock('chunks/ab/ab12', until)
    expect(fake.seen.map((s) => `${s.method} ${s.path}`)).toEqual([
      expect.stringMatching(/^PUT \/bucket\/repo\/chunks\/ab\/ab12\?retention/),
    ])
    const body = fake.seen[0]?.body.toString() ?? ''
    expect(body).toContain('<Mode>COMPLIANCE</Mode>')
    expect(body).toContain('<RetainUntilDate>2028-01-02T03:04:05')

    fake.handle = (_request, response) => reply(response, 403, 'AccessDenied')
    const failed = await storage.extendObjectLock('chunks/ab/ab12', until).catch((e: unknown) => e)
    expect(failed).toBeInstanceOf(StorageError)
    const { message, hint } = failed as StorageError
    expect(message).toContain('extend the object lock of chunks/ab/ab12')
    expect(`${message}\n${hint}`).toContain('s3:PutObjectRetention')
  })

  it('retries 503s and then succeeds', async () => {
    fake.seen = []
    let failures = 0
    fake.handle = (request, response) => {
      if (request.method === 'HEAD') return reply(response, 404)
      if (failures++ < 2) return reply(response, 503, 'SlowDown')
      reply(response, 200)
    }
    expect(await open().putIfAbsent('chunks/ab/ab12', Buffer.from('x'))).toBe(true)
    expect(puts()).toHaveLength(3)
  })

  it('abandons a stalled upload after storage.timeout and retries it', async () => {
    fake.seen = []
    let stalls = 0
    fake.handle = (request, response) => {
      if (request.method === 'HEAD') return reply(response, 404)
      if (stalls++ < 1) return // never answers
      reply(response, 200)
    }
    const started = Date.now()
    expect(await open({ timeout: 1 }).putIfAbsent('chunks/ab/ab12', Buffer.from('x'))).toBe(true)
    expect(puts()).toHaveLength(2)
    expect(Date.now() - started).toBeLessThan(8000)
  })

  it('retries a download cut off mid-body', async () => {
    const data = randomBytes(64 * 1024)
    let cuts = 0
    fake.handle = (_, response) => {
      response.writeHead(200, { 'content-length': String(data.length) })
      if (cuts++ < 1) {
        response.write(data.subarray(0, 1000))
        setTimeout(() => response.socket?.destroy(), 20)
        return
      }
      response.end(data)
    }
    expect((await open().get('chunks/ab/ab12')).equals(data)).toBe(true)
    expect(cuts).toBe(2)
  })

  it('reports a missing object as ObjectNotFoundError', async () => {
    fake.handle = (request, response) =>
      request.method === 'HEAD' ? reply(response, 404) : reply(response, 404, 'NoSuchKey')
    await expect(open().get('snapshots/x')).rejects.toBeInstanceOf(ObjectNotFoundError)
    expect(await open().stat('snapshots/x')).toBeUndefined()
  })

  it('fails once on 403 with the bucket, the operation and the IAM permission, and no secret', async () => {
    fake.seen = []
    fake.handle = (request, response) =>
      request.method === 'HEAD' ? reply(response, 403) : reply(response, 403, 'AccessDenied')
    const storage = open({ objectLock: { mode: 'GOVERNANCE', days: 30 } })
    const error = (await storage
      .putIfAbsent('chunks/ab/ab12', Buffer.from('x'))
      .catch((e: unknown) => e)) as StorageError
    expect(error).toBeInstanceOf(StorageError)
    expect(error.message).toBe(
      `cannot write chunks/ab/ab12 to s3://bucket/repo at ${new URL(fake.endpoint).host}: access denied (403 Forbidden)`,
    )
    expect(error.hint).toContain(
      's3:PutObject + s3:PutObjectRetention on arn:aws:s3:::bucket/repo/*',
    )
    expect(fake.seen).toHaveLength(1) // not retried

    const read = (await storage.get('config.json').catch((e: unknown) => e)) as StorageError
    expect(read.message).toContain('cannot read config.json from s3://bucket/repo')
    expect(read.message).toContain('access denied (403 AccessDenied)')
    expect(read.hint).toContain('s3:GetObject')
    const listing = (async () => {
      for await (const _ of storage.list('chunks/')) {
        // nothing
      }
    })()
    await expect(listing).rejects.toThrow(
      /cannot list chunks\/ in s3:\/\/bucket\/repo.*access denied/,
    )

    const create = (await storage.create().catch((e: unknown) => e)) as StorageError
    expect(create.message).toContain('cannot check bucket bucket')
    expect(create.hint).toContain('s3:ListBucket on arn:aws:s3:::bucket')
    for (const e of [error, read, create]) {
      expect(`${e.message} ${e.hint}`).not.toContain(recognisableSecret)
      expect(`${e.message} ${e.hint}`).not.toMatch(/AKIAFAKE|Signature=/)
    }
  })

  it('says how the default chain finds credentials when there are none', async () => {
    const saved = { ...process.env }
    try {
      for (const name of Object.keys(process.env)) {
        if (name.startsWith('AWS_')) delete process.env[name]
      }
      process.env.AWS_SHARED_CREDENTIALS_FILE = '/nonexistent/credentials'
      process.env.AWS_CONFIG_FILE = '/nonexistent/config'
      process.env.AWS_EC2_METADATA_DISABLED = 'true'
      const error = (await open()
        .get('config.json')
        .catch((e: unknown) => e)) as StorageError
      expect(error).toBeInstanceOf(StorageError)
      expect(error.message).toContain('cannot read config.json from s3://bucket/repo')
      expect(error.message).toContain('no AWS credentials were found')
      expect(error.hint).toContain('AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY')
    } finally {
      for (const name of Object.keys(process.env)) {
        if (name.startsWith('AWS_')) delete process.env[name]
      }
      Object.assign(process.env, saved)
    }
  })

  it('names the region a bucket lives in', async () => {
    fake.handle = (request, response) =>
      request.method === 'HEAD'
        ? reply(response, 301, undefined, {}, { 'x-amz-bucket-region': 'eu-central-1' })
        : reply(
            response,
            301,
            'PermanentRedirect',
            { Endpoint: 'bucket.s3.eu-central-1.amazonaws.com' },
            { 'x-amz-bucket-region': 'eu-central-1' },
          )
    const error = (await open()
      .get('config.json')
      .catch((e: unknown) => e)) as StorageError
    expect(error.message).toContain('bucket bucket is in another region (eu-central-1)')
    expect(error.hint).toBe('set storage.region to eu-central-1')

    fake.handle = (_, response) =>
      reply(response, 400, 'AuthorizationHeaderMalformed', { Region: 'ap-south-1' })
    const signed = (await open()
      .get('config.json')
      .catch((e: unknown) => e)) as StorageError
    expect(signed.message).toContain('bucket bucket is in another region (ap-south-1)')
    expect(signed.hint).toBe('set storage.region to ap-south-1')
  })

  it('creates a missing bucket, with object lock when configured', async () => {
    fake.seen = []
    fake.handle = (request, response) =>
      request.method === 'HEAD' ? reply(response, 404) : reply(response, 200)
    const storage = S3Storage.fromUrl(
      's3://bucket/repo',
      {
        endpoint: fake.endpoint,
        pathStyle: true,
        region: 'eu-west-1',
        objectLock: { mode: 'COMPLIANCE', days: 30 },
      },
      {},
    )
    expect(await storage.create()).toBe('created')
    const create = fake.seen.find((s) => s.method === 'PUT')
    expect(create?.path).toBe('/bucket/')
    expect(create?.headers['x-amz-bucket-object-lock-enabled']).toBe('true')
    expect(create?.body.toString()).toContain('<LocationConstraint>eu-west-1</LocationConstraint>')
  })

  it('reports versioning and object lock posture', async () => {
    const answer = (versioning: string, lock: string | undefined): Handler => {
      return (request, response) => {
        if (request.path.includes('versioning')) {
          response.writeHead(200, { 'content-type': 'application/xml' })
          return response.end(
            `<VersioningConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">${versioning}</VersioningConfiguration>`,
          )
        }
        if (lock === undefined) return reply(response, 404, 'ObjectLockConfigurationNotFoundError')
        if (lock === 'denied') return reply(response, 403, 'AccessDenied')
        response.writeHead(200, { 'content-type': 'application/xml' })
        response.end(
          `<ObjectLockConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">${lock}</ObjectLockConfiguration>`,
        )
      }
    }
    fake.handle = answer('', undefined)
    expect(await open().posture(400)).toEqual([
      'versioning is not enabled on bucket bucket: a deleted or overwritten object cannot be recovered',
      'object lock is not enabled on bucket bucket: whoever holds credentials that may delete can destroy the backups',
    ])
    const enabled = '<ObjectLockEnabled>Enabled</ObjectLockEnabled>'
    const rule = (days: number) =>
      `${enabled}<Rule><DefaultRetention><Mode>COMPLIANCE</Mode><Days>${days}</Days></DefaultRetention></Rule>`
    fake.handle = answer('<Status>Enabled</Status>', rule(30))
    expect(await open().posture(400)).toEqual([
      'object lock retention (30 days) is shorter than the backup retention window (400 days): older snapshots can be deleted',
    ])
    fake.handle = answer('<Status>Enabled</Status>', rule(30))
    expect(await open({ objectLock: { mode: 'COMPLIANCE', days: 400 } }).posture(400)).toEqual([])
    fake.handle = answer('<Status>Suspended</Status>', 'denied')
    expect(await open().posture(400)).toEqual([
      'versioning is suspended on bucket bucket: a deleted or overwritten object cannot be recovered',
      'could not check object lock of bucket bucket: the credentials lack s3:GetBucketObjectLockConfiguration',
    ])
  })

  it('keeps the secret out of a failing CLI run', async () => {
    fake.handle = (request, response) =>
      request.method === 'HEAD' ? reply(response, 403) : reply(response, 403, 'AccessDenied')
    const project = await createProject({
      config: s3Config('s3://bucket/some/prefix', fake.endpoint),
    })
    try {
      const init = await project.run(['init'])
      expect(init.code).toBe(1)
      expect(init.stderr).toContain('cannot check bucket bucket')
      expect(init.stderr).toContain('s3:ListBucket')
      const backup = await project.run(['backup'])
      expect(backup.code).toBe(1)
      expect(backup.stderr).toContain('s3:GetObject')
      for (const run of [init, backup]) {
        expect(run.stdout + run.stderr).not.toContain(recognisableSecret)
      }
    } finally {
      await project.cleanup()
    }
  })
})

// ---------------------------------------------------------------------------------------------

function s3Config(repository: string, endpoint: string): string {
  return exampleConfig.replace(
    'repository: file://./backup-repo',
    `repository: ${repository}\nstorage:\n  endpoint: ${endpoint}\n  path-style: true\n  region: us-east-1`,
  )
}

const sha256 = async (file: string) =>
  createHash('sha256')
    .update(await readFile(file))
    .digest('hex')

describe('backup and restore through the CLI on s3rver', () => {
  let project: Project
  beforeAll(async () => {
    project = await createProject({
      config: s3Config('s3://kluis-cli/some/prefix', server.endpoint),
    })
    await writeFile(
      join(project.dir, 'data', 'uploads', 'random.bin'),
      randomBytes(3 * 1024 * 1024),
    )
  })
  afterAll(async () => {
    await project?.cleanup()
  })

  it('inits the bucket, backs up, restores the same bytes and checks every chunk', async () => {
    // s3rver does not verify V4 signatures: any secret passes, so use one we can look for.
    useCredentials(s3rverAccessKey, recognisableSecret)
    const runs = []
    const init = await project.run(['init'])
    runs.push(init)
    expect(init.stderr).not.toContain('kluis:')
    expect(init.code).toBe(0)
    expect(init.stdout).toContain(`s3://kluis-cli/some/prefix at ${new URL(server.endpoint).host}`)

    const backup = await project.run(['backup', '--json'])
    runs.push(backup)
    expect(backup.code).toBe(0)
    expect(JSON.parse(backup.stdout).snapshotId).toMatch(/^[0-9a-f]{32}$/)

    const restored = await project.run(['restore', '--target', 'out', '--key', 'keys/reader.key'])
    runs.push(restored)
    expect(restored.stderr).not.toContain('kluis:')
    expect(restored.code).toBe(0)
    const out = join(project.dir, 'out')
    const rows = sqlite(join(out, 'app-db', 'app.db'), [
      'SELECT count(*), sum(length(bio)) FROM users',
    ])
    expect(rows.trim()).toBe('2000|400000')
    for (const name of ['docs/readme.txt', 'random.bin']) {
      expect(await sha256(join(out, 'uploads', name))).toBe(
        await sha256(join(project.dir, 'data', 'uploads', name)),
      )
    }

    const checked = await project.run(['check', '--read-data', '--key', 'keys/reader.key'])
    runs.push(checked)
    expect(checked.code).toBe(0)
    expect(checked.stdout).toContain('no problems found')

    const again = await project.run(['backup', '--json'])
    runs.push(again)
    expect(JSON.parse(again.stdout).dataAdded).toBe(0)
    for (const run of runs) expect(run.stdout + run.stderr).not.toContain(recognisableSecret)
  })
})
