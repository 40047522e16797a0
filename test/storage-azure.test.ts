import { createHash, randomBytes } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import {
  AccountSASPermissions,
  AccountSASResourceTypes,
  AccountSASServices,
  BlobServiceClient,
  ContainerSASPermissions,
  generateAccountSASQueryParameters,
  generateBlobSASQueryParameters,
  StorageSharedKeyCredential,
} from '@azure/storage-blob'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ConfigError, StorageError } from '../src/core/errors.js'
import { AzureStorage } from '../src/storage/azure.js'
import { openStorage } from '../src/storage/open.js'
import type { StorageSettings } from '../src/storage/storage.js'
import { storageContract } from './storage-contract.js'
import { type Azurite, startAzurite } from './support/azurite.js'
import {
  type CliRun,
  createProject,
  exampleConfig,
  type Project,
  sqlite,
} from './support/project.js'

let azurite: Azurite
beforeAll(async () => {
  azurite = await startAzurite()
})
afterAll(() => azurite?.stop())

const connection = () => ({ AZURE_STORAGE_CONNECTION_STRING: azurite.connectionString })
let containers = 0
const freshName = () => `kluis-${process.pid}-${++containers}`

/** A backend on a new container of its own (created), reached with the connection string. */
async function fresh(
  settings: StorageSettings = {},
  url = `azure://${freshName()}/backups/app`,
  env: NodeJS.ProcessEnv = connection(),
): Promise<AzureStorage> {
  const storage = AzureStorage.fromUrl(url, settings, env)
  expect(await storage.create()).toBe('created')
  return storage
}

const admin = () => BlobServiceClient.fromConnectionString(azurite.connectionString)

/** Every place a secret could be shown: message and hint. */
const shown = (error: unknown) => {
  const e = error as { message?: string; hint?: string }
  return `${e.message}\n${e.hint ?? ''}`
}

async function failure(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise
  } catch (error) {
    return error
  }
  throw new Error('expected a failure')
}

storageContract('Azure Blob (Azurite)', () => fresh())

describe('Azure repository URLs, settings and credentials', () => {
  it('opens azure://CONTAINER/PREFIX through openStorage, and names no credential', async () => {
    const storage = await openStorage('azure://my-backups/app/prod/', '/srv', {}, connection())
    expect(storage.location).toBe('azure://my-backups/app/prod (account devstoreaccount1)')
    expect(storage.concurrency).toBe(8)
    const bare = AzureStorage.fromUrl('azure://my-backups', { concurrency: 3 }, connection())
    expect(bare.location).toBe('azure://my-backups (account devstoreaccount1)')
    expect(bare.concurrency).toBe(3)
  })

  it('refuses a bad URL, container name or setting as a configuration error', () => {
    const env = connection()
    const configError = (url: string, settings: StorageSettings = {}) => {
      try {
        AzureStorage.fromUrl(url, settings, env)
      } catch (error) {
        expect(error).toBeInstanceOf(ConfigError)
        return shown(error)
      }
      throw new Error(`${url} was accepted`)
    }
    expect(configError('azure://')).toContain('not a valid Azure container name')
    expect(configError('azure://Backups/x')).toContain("'Backups'")
    expect(configError('azure://ab')).toContain('3 to 63')
    expect(configError('azure://a--b/x')).toContain('not a valid Azure container name')
    const withSas = configError('azure://backups/x?sv=2024&sig=SECRETSIG')
    expect(withSas).toContain('AZURE_STORAGE_')
    expect(withSas).not.toContain('SECRETSIG')
    expect(configError('azure://backups', { storageClass: 'STANDARD_IA' })).toContain(
      'Hot, Cool, Cold, Archive',
    )
    expect(configError('azure://backups', { serverSideEncryption: 'aws:kms' })).toContain('S3 only')
    expect(configError('azure://backups', { region: 'eu-west-1' })).toContain('S3 only')
    expect(() =>
      AzureStorage.fromUrl('azure://backups', { storageClass: 'cOoL' }, env),
    ).not.toThrow()
  })

  it('without credentials names the variables it reads, with a hint', () => {
    const missing = (env: NodeJS.ProcessEnv) => {
      try {
        AzureStorage.fromUrl('azure://backups/app', {}, env)
      } catch (error) {
        expect(error).toBeInstanceOf(ConfigError)
        expect((error as ConfigError).hint).toBeTruthy()
        return (error as ConfigError).message
      }
      throw new Error('credentials were found')
    }
    const none = missing({})
    for (const variable of [
      'AZURE_STORAGE_CONNECTION_STRING',
      'AZURE_STORAGE_ACCOUNT',
      'AZURE_STORAGE_SAS_TOKEN',
      'AZURE_STORAGE_KEY',
    ]) {
      expect(none).toContain(variable)
    }
    expect(missing({ AZURE_STORAGE_ACCOUNT: 'myaccount' })).toContain(
      'neither AZURE_STORAGE_SAS_TOKEN nor AZURE_STORAGE_KEY',
    )
    expect(missing({ AZURE_STORAGE_SAS_TOKEN: 'sv=1&sig=abc' })).toContain(
      'AZURE_STORAGE_ACCOUNT is not set',
    )
    const bad = missing({ AZURE_STORAGE_CONNECTION_STRING: 'AccountKey=TOPSECRETKEY;Nonsense' })
    expect(bad).toContain('not a valid connection string')
    expect(bad).not.toContain('TOPSECRETKEY')
    // The process environment is not read: only the env argument counts.
    process.env.AZURE_STORAGE_CONNECTION_STRING = azurite.connectionString
    try {
      expect(missing({})).toContain('no Azure credentials')
    } finally {
      delete process.env.AZURE_STORAGE_CONNECTION_STRING
    }
  })

  it('works with an account and key, and with an account SAS, against storage.endpoint', async () => {
    const endpoint = { endpoint: azurite.blobEndpoint }
    const withKey = {
      AZURE_STORAGE_ACCOUNT: azurite.accountName,
      AZURE_STORAGE_KEY: azurite.accountKey,
    }
    const storage = await fresh(endpoint, `azure://${freshName()}/k`, withKey)
    expect(await storage.putIfAbsent('config.json', Buffer.from('{}'))).toBe(true)
    expect((await storage.get('config.json')).toString()).toBe('{}')

    const sas = accountSas('rwdlc', 'sco')
    const bySas = await fresh(endpoint, `azure://${freshName()}/s`, {
      AZURE_STORAGE_ACCOUNT: azurite.accountName,
      AZURE_STORAGE_SAS_TOKEN: `?${sas}`,
    })
    expect(await bySas.putIfAbsent('a', Buffer.from('x'))).toBe(true)
    expect(await bySas.putIfAbsent('a', Buffer.from('y'))).toBe(false)
    expect(await bySas.stat('a')).toEqual({ size: 1 })

    const queried = { endpoint: `${azurite.blobEndpoint}?sv=1&sig=SECRETSIG` }
    expect(() =>
      AzureStorage.fromUrl('azure://backups', queried, {
        AZURE_STORAGE_ACCOUNT: azurite.accountName,
        AZURE_STORAGE_SAS_TOKEN: 'sv=1&sig=x',
      }),
    ).toThrow(/without a query/)
    // A connection string and storage.endpoint would disagree on the service: refused.
    expect(() => AzureStorage.fromUrl('azure://backups', endpoint, connection())).toThrow(
      ConfigError,
    )
  })

  it('a SAS that may not create containers: init names the missing permission, no signature', async () => {
    const container = freshName()
    const cannot = async (sas: string) => {
      const storage = AzureStorage.fromUrl(
        `azure://${container}/app`,
        { endpoint: azurite.blobEndpoint },
        { AZURE_STORAGE_ACCOUNT: azurite.accountName, AZURE_STORAGE_SAS_TOKEN: sas },
      )
      const error = await failure(storage.create())
      expect(error).toBeInstanceOf(StorageError)
      const text = shown(error)
      expect(text).toContain(`cannot create container ${container} in storage account`)
      expect(text).toContain('az storage container create')
      expect(text).not.toContain(new URLSearchParams(sas).get('sig') as string)
      return text
    }
    expect(await cannot(accountSas('rdl', 'co'))).toContain(
      'the permission c or w; this SAS has sp=rdl',
    )
    expect(await cannot(accountSas('rwdlc', 'o'))).toContain('resource type c (srt includes c)')
    expect(await cannot(containerSas(container, 'racwdl'))).toContain(
      'a container SAS cannot create its container',
    )
    expect(await admin().getContainerClient(container).exists()).toBe(false)
  })

  it('a container SAS finds its existing container (it may not read its properties)', async () => {
    const container = freshName()
    await admin().getContainerClient(container).create()
    const sas = containerSas(container, 'rwdl')
    const storage = AzureStorage.fromUrl(
      `azure://${container}/app`,
      { endpoint: azurite.blobEndpoint },
      { AZURE_STORAGE_ACCOUNT: azurite.accountName, AZURE_STORAGE_SAS_TOKEN: sas },
    )
    expect(await storage.create()).toBe('exists')
    expect(await storage.putIfAbsent('chunks/00/x', Buffer.from('x'))).toBe(true)
    const warnings = (await storage.posture(30)).join('\n')
    expect(warnings).toContain("may not read the blob service's properties (403")
    expect(warnings).not.toContain(new URLSearchParams(sas).get('sig') as string)
  })
})

describe('Azure specifics on Azurite', () => {
  it('keeps prefixes apart in one container, and names objects relative to the prefix', async () => {
    const container = freshName()
    const one = await fresh({}, `azure://${container}/app`)
    const other = AzureStorage.fromUrl(`azure://${container}/app-old`, {}, connection())
    expect(await other.create()).toBe('exists')
    await one.putIfAbsent('chunks/ab/1', Buffer.from('1'))
    await other.putIfAbsent('chunks/ab/2', Buffer.from('22'))
    const names = async (storage: AzureStorage) => {
      const out: string[] = []
      for await (const object of storage.list('')) out.push(`${object.name}=${object.size}`)
      return out
    }
    expect(await names(one)).toEqual(['chunks/ab/1=1'])
    expect(await names(other)).toEqual(['chunks/ab/2=2'])
    expect(await one.stat('chunks/ab/2')).toBeUndefined()
    const blobs: string[] = []
    for await (const blob of admin().getContainerClient(container).listBlobsFlat()) {
      blobs.push(blob.name)
    }
    expect(blobs.sort()).toEqual(['app-old/chunks/ab/2', 'app/chunks/ab/1'])
  })

  it('writes a large object as blocks; of concurrent writers exactly one wins, whole', async () => {
    const storage = await fresh()
    const size = 20 * 1024 * 1024 + 5
    const candidates = [1, 2, 3].map(() => randomBytes(size))
    const results = await Promise.all(candidates.map((data) => storage.putIfAbsent('big', data)))
    expect(results.filter(Boolean)).toHaveLength(1)
    const winner = candidates[results.indexOf(true)] as Buffer
    const back = await storage.get('big')
    expect(back.length).toBe(size)
    expect(back.equals(winner)).toBe(true)
    const blocks = await admin()
      .getContainerClient(containerOf(storage))
      .getBlockBlobClient('backups/app/big')
      .getBlockList('committed')
    expect(blocks.committedBlocks?.length).toBe(3)
  })

  it('applies storage-class as the access tier', async () => {
    const storage = await fresh({ storageClass: 'cool' })
    await storage.putIfAbsent('chunks/aa/c', Buffer.from('cool'))
    const properties = await admin()
      .getContainerClient(containerOf(storage))
      .getBlobClient('backups/app/chunks/aa/c')
      .getProperties()
    expect(properties.accessTier).toBe('Cool')
    // Indexes and the config are read on every run: they keep the account's default tier.
    await storage.putIfAbsent('snapshots/s.json.asc', Buffer.from('index'))
    const index = await admin()
      .getContainerClient(containerOf(storage))
      .getBlobClient('backups/app/snapshots/s.json.asc')
      .getProperties()
    expect(index.accessTierInferred).toBe(true)
  })

  it('sends object-lock as an immutability policy (Azurite accepts and ignores it)', async () => {
    const storage = await fresh({ objectLock: { mode: 'GOVERNANCE', days: 30 } })
    expect(await storage.putIfAbsent('snapshots/s1', Buffer.from('s'))).toBe(true)
    expect((await storage.get('snapshots/s1')).toString()).toBe('s')
    const warnings = (await storage.posture(366)).join('\n')
    expect(warnings).toContain('keeps blobs for 30 days, less than the retention window of 366')
  })

  it('reports the posture as warnings and never throws, even where Azurite is silent', async () => {
    const storage = await fresh()
    expect((await storage.posture(30)).join('\n')).toContain('holds no blobs yet')
    await storage.putIfAbsent('config.json', Buffer.from('{}'))
    const warnings = await storage.posture(30)
    const text = warnings.join('\n')
    expect(text).toContain('blob versioning appears to be off')
    expect(text).toContain('has no immutability policy')
    expect(text).toContain('the credentials may delete objects')
    expect(text).not.toContain(azurite.accountKey)
  })

  it('a wrong account key: one StorageError naming the container and the operation, no secret', async () => {
    const container = freshName()
    await admin().getContainerClient(container).create()
    const wrongKey = Buffer.alloc(64, 7).toString('base64')
    const wrong = azurite.connectionString.replace(azurite.accountKey, wrongKey)
    const storage = AzureStorage.fromUrl(
      `azure://${container}/app`,
      {},
      {
        AZURE_STORAGE_CONNECTION_STRING: wrong,
      },
    )
    const started = Date.now()
    const error = await failure(storage.putIfAbsent('chunks/ab/ab12', Buffer.from('x')))
    expect(Date.now() - started).toBeLessThan(3000) // not retried
    expect(error).toBeInstanceOf(StorageError)
    const text = shown(error)
    expect(text).toContain(`write chunks/ab/ab12 to azure://${container}/app`)
    expect(text).toContain('refused')
    expect(text).toContain('AZURE_STORAGE_CONNECTION_STRING')
    for (const secret of [wrongKey, wrong, azurite.accountKey]) expect(text).not.toContain(secret)
  })

  it('a missing container: says so and how to create it', async () => {
    const storage = AzureStorage.fromUrl(`azure://${freshName()}/app`, {}, connection())
    const error = await failure(storage.get('config.json'))
    expect(error).toBeInstanceOf(StorageError)
    expect(shown(error)).toContain('does not exist in storage account devstoreaccount1')
    expect(shown(error)).toContain('kluis init')
    await expect(storage.stat('x')).rejects.toBeInstanceOf(StorageError)
  })

  it('a storage account that does not exist fails at once, not after a minute of retries', async () => {
    const storage = AzureStorage.fromUrl(
      'azure://backups/app',
      { endpoint: 'http://kluis-no-such-account.invalid/acct' },
      { AZURE_STORAGE_ACCOUNT: 'nosuchaccount', AZURE_STORAGE_KEY: azurite.accountKey },
    )
    const started = Date.now()
    const error = await failure(storage.stat('config.json'))
    expect(Date.now() - started).toBeLessThan(5000)
    expect(error).toBeInstanceOf(StorageError)
    expect(shown(error)).toContain('kluis-no-such-account.invalid does not exist')
    expect(shown(error)).not.toContain(azurite.accountKey)
  })
})

describe('Azure faults, against an in-process fake of just the Blob PUT', () => {
  interface Seen {
    method: string
    url: string
    headers: IncomingMessage['headers']
  }
  let server: Server
  let seen: Seen[] = []
  let respond: (request: IncomingMessage, response: ServerResponse, index: number) => void
  beforeAll(async () => {
    server = createServer((request, response) => {
      const chunks: Buffer[] = []
      request.on('data', (chunk: Buffer) => chunks.push(chunk))
      request.on('end', () => {
        seen.push({
          method: request.method ?? '',
          url: request.url ?? '',
          headers: request.headers,
        })
        respond(request, response, seen.length - 1)
      })
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  })
  afterAll(async () => {
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  })

  const fake = (settings: StorageSettings = {}) => {
    seen = []
    const port = (server.address() as AddressInfo).port
    return AzureStorage.fromUrl(
      'azure://fake/app',
      { endpoint: `http://127.0.0.1:${port}/fakeaccount`, ...settings },
      { AZURE_STORAGE_ACCOUNT: 'fakeaccount', AZURE_STORAGE_KEY: azurite.accountKey },
    )
  }
  const created = (response: ServerResponse) => {
    response.writeHead(201, { etag: '"0x1"', 'last-modified': new Date().toUTCString() })
    response.end()
  }
  const error = (response: ServerResponse, status: number, code: string) => {
    response.writeHead(status, { 'content-type': 'application/xml', 'x-ms-error-code': code })
    response.end(
      `<?xml version="1.0" encoding="utf-8"?><Error><Code>${code}</Code><Message>${code} here</Message></Error>`,
    )
  }
  const puts = () => seen.filter((request) => request.method === 'PUT')

  it('retries a 503 twice, then succeeds; sends If-None-Match, the tier and the retention', async () => {
    const storage = fake({ storageClass: 'archive', objectLock: { mode: 'COMPLIANCE', days: 400 } })
    respond = (_request, response, index) =>
      index < 2 ? error(response, 503, 'ServerBusy') : created(response)
    expect(await storage.putIfAbsent('chunks/ab/ab12', Buffer.from('data'))).toBe(true)
    expect(puts()).toHaveLength(3)
    const headers = puts()[2]?.headers ?? {}
    expect(puts()[2]?.url).toMatch(/^\/fakeaccount\/fake\/app\/chunks\/ab\/ab12\?timeout=120$/)
    expect(headers['if-none-match']).toBe('*')
    expect(headers['x-ms-access-tier']).toBe('Archive')
    expect(headers['x-ms-immutability-policy-mode']?.toString().toLowerCase()).toBe('locked')
    const until = Date.parse(String(headers['x-ms-immutability-policy-until-date']))
    expect(Math.round((until - Date.now()) / 86_400_000)).toBe(400)
  })

  it("extends a blob's immutability policy in the configured mode; a 403 names the operation", async () => {
    const storage = fake({ objectLock: { mode: 'GOVERNANCE', days: 400 } })
    expect(storage.objectLockDays).toBe(400)
    const until = new Date('2028-01-02T03:04:05Z')
    respond = (_request, response) => {
      response.writeHead(200, { 'x-ms-immutability-policy-until-date': until.toUTCString() })
      response.end()
    }
    await storage.extendObjectLock('chunks/ab/ab12', until)
    expect(puts()).toHaveLength(1)
    expect(puts()[0]?.url).toMatch(
      /^\/fakeaccount\/fake\/app\/chunks\/ab\/ab12\?comp=immutabilityPolicies/,
    )
    const headers = puts()[0]?.headers ?? {}
    expect(headers['x-ms-immutability-policy-mode']?.toString().toLowerCase()).toBe('unlocked')
    expect(Date.parse(String(headers['x-ms-immutability-policy-until-date']))).toBe(until.getTime())

    respond = (_request, response) => error(response, 403, 'AuthorizationPermissionMismatch')
    const failed = await storage.extendObjectLock('chunks/ab/ab12', until).catch((e: unknown) => e)
    expect(failed).toBeInstanceOf(StorageError)
    expect(shown(failed)).toContain('extend the immutability policy of chunks/ab/ab12')
    expect(shown(failed)).toContain('403 AuthorizationPermissionMismatch')
  })

  it('sends no tier and no retention when they are not configured', async () => {
    const storage = fake()
    respond = (_request, response) => created(response)
    expect(await storage.putIfAbsent('a', Buffer.from('x'))).toBe(true)
    const headers = puts()[0]?.headers ?? {}
    expect(headers['x-ms-access-tier']).toBeUndefined()
    expect(headers['x-ms-immutability-policy-mode']).toBeUndefined()
    expect(headers['x-ms-immutability-policy-until-date']).toBeUndefined()
  })

  it('a 409 BlobAlreadyExists (or 412) on upload returns false', async () => {
    for (const [status, code] of [
      [409, 'BlobAlreadyExists'],
      [412, 'ConditionNotMet'],
    ] as const) {
      const storage = fake()
      respond = (request, response) => {
        if (request.method === 'HEAD') {
          response.writeHead(200, { 'content-length': '5', 'x-ms-meta-kluiswrite': 'another' })
          response.end()
        } else error(response, status, code)
      }
      expect(await storage.putIfAbsent('snapshots/s1', Buffer.from('mine'))).toBe(false)
      expect(puts()).toHaveLength(1)
    }
  })

  it('a write whose answer was lost, retried into 409, counts as ours', async () => {
    const storage = fake()
    let stored: string | undefined
    respond = (request, response, index) => {
      if (request.method === 'HEAD') {
        response.writeHead(200, { 'content-length': '4', 'x-ms-meta-kluiswrite': stored ?? '' })
        response.end()
      } else if (index === 0) {
        stored = String(request.headers['x-ms-meta-kluiswrite'])
        request.socket.destroy() // stored, but the client never hears so
      } else error(response, 409, 'BlobAlreadyExists')
    }
    expect(await storage.putIfAbsent('snapshots/s2', Buffer.from('mine'))).toBe(true)
    expect(puts()).toHaveLength(2)
  })

  it('abandons a request that makes no progress for storage.timeout seconds, and retries it', async () => {
    const storage = fake({ timeout: 1 })
    respond = (_request, response, index) => {
      if (index > 0) created(response) // the first request is never answered
    }
    const started = Date.now()
    expect(await storage.putIfAbsent('stalled', Buffer.from('x'))).toBe(true)
    expect(puts()).toHaveLength(2)
    expect(Date.now() - started).toBeGreaterThanOrEqual(900)
  })

  it('a download that stalls halfway resumes from where it stopped', async () => {
    const storage = fake({ timeout: 1 })
    const data = Buffer.from('0123456789')
    const ranges: string[] = []
    respond = (request, response, index) => {
      const headers = { etag: '"0x1"', 'last-modified': new Date().toUTCString() }
      if (index === 0) {
        response.writeHead(200, { ...headers, 'content-length': '10' })
        response.write(data.subarray(0, 4)) // and then nothing
        return
      }
      const range = String(request.headers['x-ms-range'] ?? request.headers.range)
      ranges.push(range)
      const start = Number(/bytes=(\d+)-/.exec(range)?.[1])
      response.writeHead(206, {
        ...headers,
        'content-length': String(data.length - start),
        'content-range': `bytes ${start}-${data.length - 1}/${data.length}`,
      })
      response.end(data.subarray(start))
    }
    expect((await storage.get('chunks/ab/ab12')).equals(data)).toBe(true)
    expect(ranges).toEqual([expect.stringMatching(/^bytes=4-/)])
  })

  it('gives up on a permanent 403 at once, with one error naming the operation', async () => {
    const storage = fake()
    respond = (_request, response) => error(response, 403, 'AuthorizationPermissionMismatch')
    const thrown = await failure(storage.delete('locks/l1'))
    expect(seen).toHaveLength(1)
    expect(thrown).toBeInstanceOf(StorageError)
    expect(shown(thrown)).toContain('delete locks/l1 from azure://fake/app (account fakeaccount)')
    expect(shown(thrown)).toContain('network rules')
  })
})

describe('the CLI on an Azure repository (Azurite)', () => {
  let project: Project
  const runs: CliRun[] = []
  const run = async (args: string[], env: NodeJS.ProcessEnv = connection()) => {
    const result = await project.run(args, env)
    runs.push(result)
    return result
  }
  beforeAll(async () => {
    project = await createProject({
      config: exampleConfig.replace(
        'repository: file://./backup-repo',
        'repository: azure://kluis-cli/some/prefix',
      ),
    })
    // Several chunks' worth of incompressible bytes, so chunk uploads run in parallel.
    await writeFile(join(project.dir, 'data', 'uploads', 'photo.bin'), randomBytes(6 * 1024 * 1024))
  })
  afterAll(() => project?.cleanup())

  it('init creates the container; backup, restore (bytes equal) and check --read-data succeed', async () => {
    const init = await run(['init'])
    expect(init.stderr).toContain('created azure://kluis-cli/some/prefix')
    expect(init.code).toBe(0)
    expect(await admin().getContainerClient('kluis-cli').exists()).toBe(true)

    const backup = await run(['backup', '--json'])
    expect(backup.code).toBe(0)
    expect(JSON.parse(backup.stdout).snapshotId).toMatch(/^[0-9a-f]{32}$/)

    const restore = await run(['restore', '--target', 'out', '--key', 'keys/reader.key'])
    expect(restore.stderr).not.toContain('kluis:')
    expect(restore.code).toBe(0)
    const out = join(project.dir, 'out')
    const data = join(project.dir, 'data')
    for (const name of ['docs/readme.txt', 'photo.bin']) {
      expect(await sha256(join(out, 'uploads', name))).toBe(
        await sha256(join(data, 'uploads', name)),
      )
    }
    // The database restores as the same content (a consistent snapshot of the same pages).
    const dump = (file: string) =>
      sqlite(file, ['SELECT id, name, hex(bio) FROM users ORDER BY id'])
    expect(dump(join(out, 'app-db', 'app.db'))).toBe(dump(join(data, 'app.db')))
    expect(dump(join(data, 'app.db')).split('\n').length).toBeGreaterThan(2000)

    const check = await run(['check', '--read-data', '--key', 'keys/reader.key'])
    expect(check.stderr).not.toContain('kluis:')
    expect(check.code).toBe(0)

    const blobs: string[] = []
    for await (const blob of admin().getContainerClient('kluis-cli').listBlobsFlat()) {
      blobs.push(blob.name)
    }
    expect(blobs).toContain('some/prefix/config.json')
    expect(blobs.some((name) => name.startsWith('some/prefix/chunks/'))).toBe(true)
    expect(blobs.every((name) => name.startsWith('some/prefix/'))).toBe(true)
  })

  it('fails cleanly with a wrong key or none, and no run shows a secret', async () => {
    const wrongKey = Buffer.alloc(64, 9).toString('base64')
    const wrong = azurite.connectionString.replace(azurite.accountKey, wrongKey)
    const failed = await run(['snapshots'], {
      AZURE_STORAGE_CONNECTION_STRING: wrong,
      KLUIS_DEBUG: '1',
    })
    expect(failed.code).toBe(1)
    expect(failed.stderr).toContain('azure://kluis-cli/some/prefix')
    expect(failed.stderr).toContain('hint:')
    const none = await run(['snapshots'], {})
    expect(none.code).toBe(2)
    expect(none.stderr).toContain('AZURE_STORAGE_CONNECTION_STRING')
    const sas = accountSas('rl', 'co')
    const readOnly = await run(['backup'], {
      AZURE_STORAGE_CONNECTION_STRING: `BlobEndpoint=${azurite.blobEndpoint};SharedAccessSignature=${sas}`,
    })
    expect(readOnly.code).toBe(1)
    const sig = new URLSearchParams(sas).get('sig') as string
    expect(runs.length).toBeGreaterThanOrEqual(3)
    for (const { stdout, stderr } of runs) {
      for (const secret of [
        azurite.accountKey,
        azurite.connectionString,
        wrongKey,
        wrong,
        sas,
        sig,
      ]) {
        expect(stdout).not.toContain(secret)
        expect(stderr).not.toContain(secret)
      }
    }
  })
})

function accountSas(permissions: string, resourceTypes: string): string {
  return generateAccountSASQueryParameters(
    {
      permissions: AccountSASPermissions.parse(permissions),
      resourceTypes: AccountSASResourceTypes.parse(resourceTypes).toString(),
      services: AccountSASServices.parse('b').toString(),
      expiresOn: new Date(Date.now() + 3_600_000),
    },
    new StorageSharedKeyCredential(azurite.accountName, azurite.accountKey),
  ).toString()
}

function containerSas(container: string, permissions: string): string {
  return generateBlobSASQueryParameters(
    {
      containerName: container,
      permissions: ContainerSASPermissions.parse(permissions),
      expiresOn: new Date(Date.now() + 3_600_000),
    },
    new StorageSharedKeyCredential(azurite.accountName, azurite.accountKey),
  ).toString()
}

function containerOf(storage: AzureStorage): string {
  return /^azure:\/\/([^/ ]+)/.exec(storage.location)?.[1] as string
}

async function sha256(file: string): Promise<string> {
  return createHash('sha256')
    .update(await readFile(file))
    .digest('hex')
}
