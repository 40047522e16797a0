import { randomBytes } from 'node:crypto'
import {
  type BlobImmutabilityPolicy,
  BlobServiceClient,
  type BlockBlobClient,
  type ContainerClient,
  type Metadata,
  newPipeline,
  type StoragePipelineOptions,
} from '@azure/storage-blob'
import { StorageError } from '../core/errors.js'
import { azureSettings, type Connection, parseAzureUrl, resolveConnection } from './azure-config.js'
import {
  type AzureOperation,
  azureFailure,
  createHint,
  isAlreadyExists,
  isAuthenticationFailure,
  isContainerMissing,
  isNotFound,
  isPermissionDenied,
  scrubber,
  storageFailure,
} from './azure-errors.js'
import { azureAgent } from './azure-http.js'
import { azurePosture } from './azure-posture.js'
import { deleteRightsWarning } from './delete-probe.js'
import {
  isBulkData,
  ObjectNotFoundError,
  type StorageBackend,
  type StorageSettings,
  type StoredObject,
} from './storage.js'

/** Up to this size a blob is written in one request; larger ones as staged blocks. */
const SINGLE_SHOT = 16 * 1024 * 1024
const BLOCK_SIZE = 8 * 1024 * 1024
const BLOCKS_AT_ONCE = 4
const DEFAULT_CONCURRENCY = 8

/**
 * A repository in an Azure Blob Storage container (`azure://CONTAINER/PREFIX`). Put-if-absent is
 * a conditional write (If-None-Match: *); the SDK retries throttling, 5xx and dropped
 * connections with exponential backoff; failures it cannot fix become one StorageError that
 * names the container, the operation and the fix, without a key, SAS or connection string.
 */
export class AzureStorage implements StorageBackend {
  readonly location: string
  readonly concurrency: number
  private readonly service: BlobServiceClient
  private readonly container: ContainerClient
  private readonly base: string

  private constructor(
    private readonly containerName: string,
    prefix: string,
    private readonly tier: string | undefined,
    private readonly settings: StorageSettings,
    private readonly connection: Connection,
  ) {
    this.base = prefix ? `${prefix}/` : ''
    this.location = `azure://${containerName}${prefix ? `/${prefix}` : ''} (account ${connection.access.account})`
    this.concurrency = settings.concurrency ?? DEFAULT_CONCURRENCY
    const pipelineOptions: StoragePipelineOptions & { agent: unknown } = {
      retryOptions: {
        maxTries: 8,
        retryDelayInMs: 500,
        maxRetryDelayInMs: 30_000,
        tryTimeoutInMs: (settings.timeout ?? 120) * 1000,
      },
      // Not in the SDK's option type, but passed on to the HTTP pipeline (see azure-http.ts).
      agent: azureAgent(new URL(connection.url).protocol, (settings.timeout ?? 120) * 1000),
    }
    this.service = new BlobServiceClient(
      connection.url,
      newPipeline(connection.credential, pipelineOptions),
    )
    this.container = this.service.getContainerClient(containerName)
  }

  /** `azure://CONTAINER/OPTIONAL/PREFIX`, with credentials from `env` (see resolveConnection). */
  static fromUrl(url: string, settings: StorageSettings, env: NodeJS.ProcessEnv): AzureStorage {
    const { container, prefix } = parseAzureUrl(url)
    const tier = azureSettings(url, settings)
    return new AzureStorage(
      container,
      prefix,
      tier,
      settings,
      resolveConnection(env, settings.endpoint),
    )
  }

  async create(): Promise<'created' | 'exists'> {
    const { account } = this.connection.access
    const creating = {
      doing: `create container ${this.containerName} in storage account ${account}`,
      permission: 'c',
    }
    try {
      if (await this.container.exists()) return 'exists'
    } catch (error) {
      const failure = azureFailure(error)
      if (failure.status !== 403 || isAuthenticationFailure(failure)) {
        throw this.failure(creating, error)
      }
      // A container SAS may list blobs but not read the container's properties.
      if (await this.listable()) return 'exists'
    }
    try {
      return (await this.container.createIfNotExists()).succeeded ? 'created' : 'exists'
    } catch (error) {
      const failure = azureFailure(error)
      const { access } = this.connection
      const containerSas = access.sas?.resource === 'c' && failure.status === 403
      if (!containerSas && !(access.kind === 'sas' && isPermissionDenied(failure))) {
        throw this.failure(creating, error)
      }
      throw new StorageError(
        `cannot ${creating.doing}: the credentials may not create containers (403 ${failure.code})`,
        createHint(this.containerName, access),
      )
    }
  }

  async posture(retentionDays: number): Promise<string[]> {
    const warnings = await azurePosture({
      service: this.service,
      container: this.container,
      containerName: this.containerName,
      base: this.base,
      location: this.location,
      account: this.connection.access.account,
      objectLock: this.settings.objectLock,
      retentionDays,
      clean: scrubber(this.connection.secrets),
    })
    return [...warnings, ...(await deleteRightsWarning(this))]
  }

  async putIfAbsent(name: string, data: Buffer): Promise<boolean> {
    const blob = this.container.getBlockBlobClient(this.key(name))
    // Tells our own write from another's when a retried request finds the blob already there.
    const marker = randomBytes(12).toString('hex')
    const options = {
      conditions: { ifNoneMatch: '*' },
      metadata: { kluiswrite: marker } as Metadata,
      ...(this.tier && isBulkData(name) ? { tier: this.tier } : {}),
      ...(this.settings.objectLock ? { immutabilityPolicy: this.retention() } : {}),
    }
    try {
      if (data.length <= SINGLE_SHOT) await blob.upload(data, data.length, options)
      else await this.uploadBlocks(blob, data, options)
      return true
    } catch (error) {
      const writing = { doing: `write ${name} to ${this.location}`, permission: 'w or c' }
      if (!isAlreadyExists(azureFailure(error))) throw this.failure(writing, error)
      try {
        const properties = await blob.getProperties()
        return properties.metadata?.kluiswrite === marker
      } catch {
        throw this.failure(writing, error)
      }
    }
  }

  /** Stages 8 MiB blocks (views of `data`, not copies) and commits them if the name is free. */
  private async uploadBlocks(
    blob: BlockBlobClient,
    data: Buffer,
    options: Parameters<BlockBlobClient['commitBlockList']>[1],
  ): Promise<void> {
    // Block ids unique to this upload: a concurrent writer of the same name stages its own.
    const upload = randomBytes(8).toString('hex')
    const ids: string[] = []
    for (let offset = 0; offset < data.length; offset += BLOCK_SIZE) {
      ids.push(Buffer.from(`${upload}-${String(ids.length).padStart(6, '0')}`).toString('base64'))
    }
    let next = 0
    const worker = async () => {
      while (next < ids.length) {
        const index = next++
        const part = data.subarray(index * BLOCK_SIZE, (index + 1) * BLOCK_SIZE)
        await blob.stageBlock(ids[index] as string, part, part.length)
      }
    }
    await Promise.all(Array.from({ length: Math.min(BLOCKS_AT_ONCE, ids.length) }, worker))
    await blob.commitBlockList(ids, options)
  }

  /**
   * The blob's bytes. The SDK retries the request, but not a body that breaks off (it treats the
   * connection's 'aborted' as a cancel): that is resumed here from the last byte received, on
   * the same version of the blob (If-Match), up to 5 times in a row without progress.
   */
  async get(name: string): Promise<Buffer> {
    const blob = this.container.getBlobClient(this.key(name))
    const reading = { doing: `read ${name} from ${this.location}`, permission: 'r' }
    const parts: Buffer[] = []
    let received = 0
    let size: number | undefined
    let etag: string | undefined
    for (let failures = 0; ; ) {
      let body: NodeJS.ReadableStream
      try {
        const response = await blob.download(received, undefined, {
          maxRetryRequests: 0,
          ...(etag ? { conditions: { ifMatch: etag } } : {}),
        })
        size ??= response.contentLength
        etag ??= response.etag
        if (!response.readableStreamBody) throw new Error('the service sent no content')
        body = response.readableStreamBody
      } catch (error) {
        if (received === 0 && isNotFound(azureFailure(error))) throw new ObjectNotFoundError(name)
        throw this.failure(reading, error)
      }
      const before = received
      try {
        for await (const part of body) {
          parts.push(part as Buffer)
          received += (part as Buffer).length
        }
        break
      } catch (error) {
        if (size !== undefined && received >= size) break // it broke off after the last byte
        failures = received > before ? 1 : failures + 1
        if (failures > 5) throw this.failure(reading, error)
      }
    }
    const data = Buffer.concat(parts)
    if (size !== undefined && data.length !== size) {
      throw new StorageError(`cannot ${reading.doing}: got ${data.length} of ${size} bytes`)
    }
    return data
  }

  async stat(name: string): Promise<{ size: number } | undefined> {
    try {
      const properties = await this.container.getBlobClient(this.key(name)).getProperties()
      return { size: properties.contentLength ?? 0 }
    } catch (error) {
      if (isNotFound(azureFailure(error))) return undefined
      throw this.failure(
        { doing: `read the size of ${name} in ${this.location}`, permission: 'r' },
        error,
      )
    }
  }

  async *list(prefix: string): AsyncIterable<StoredObject> {
    try {
      const pages = this.container
        .listBlobsFlat({ prefix: this.key(prefix) })
        .byPage({ maxPageSize: 5000 })
      for await (const page of pages) {
        for (const item of page.segment.blobItems) {
          yield {
            name: item.name.slice(this.base.length),
            size: item.properties.contentLength ?? 0,
          }
        }
      }
    } catch (error) {
      throw this.failure(
        { doing: `list ${prefix || 'the objects'} in ${this.location}`, permission: 'l' },
        error,
      )
    }
  }

  async delete(name: string): Promise<void> {
    try {
      await this.container
        .getBlobClient(this.key(name))
        .deleteIfExists({ deleteSnapshots: 'include' })
    } catch (error) {
      throw this.failure({ doing: `delete ${name} from ${this.location}`, permission: 'd' }, error)
    }
  }

  /** Whether blobs can be listed, i.e. the container exists; false when it does not. */
  private async listable(): Promise<boolean> {
    try {
      await this.container.listBlobsFlat().byPage({ maxPageSize: 1 }).next()
      return true
    } catch (error) {
      if (isContainerMissing(azureFailure(error)) || azureFailure(error).status === 403)
        return false
      throw this.failure({ doing: `list the objects in ${this.location}`, permission: 'l' }, error)
    }
  }

  get objectLockDays(): number | undefined {
    return this.settings.objectLock?.days
  }

  async extendObjectLock(name: string, until: Date): Promise<void> {
    if (!this.settings.objectLock) return
    const blob = this.container.getBlobClient(this.key(name))
    try {
      await blob.setImmutabilityPolicy({ ...this.retention(), expiriesOn: until })
    } catch (error) {
      throw this.failure(
        { doing: `extend the immutability policy of ${name} in ${this.location}`, permission: 'i' },
        error,
      )
    }
  }

  private retention(): BlobImmutabilityPolicy {
    const lock = this.settings.objectLock
    if (!lock) return {}
    return {
      expiriesOn: new Date(Date.now() + lock.days * 86_400_000),
      policyMode: lock.mode === 'COMPLIANCE' ? 'Locked' : 'Unlocked',
    }
  }

  private key(name: string): string {
    return `${this.base}${name}`
  }

  private failure(operation: AzureOperation, error: unknown): StorageError {
    return storageFailure(
      operation,
      this.containerName,
      this.connection.access,
      error,
      this.connection.secrets,
    )
  }
}
