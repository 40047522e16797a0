import {
  type BucketLocationConstraint,
  CreateBucketCommand,
  DeleteObjectCommand,
  GetBucketVersioningCommand,
  GetObjectCommand,
  type GetObjectCommandOutput,
  GetObjectLockConfigurationCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  type ListObjectsV2CommandOutput,
  PutObjectCommand,
  type PutObjectCommandInput,
  PutObjectRetentionCommand,
  type S3Client,
  type StorageClass,
} from '@aws-sdk/client-s3'
import { Upload } from '@aws-sdk/lib-storage'
import { StorageError } from '../core/errors.js'
import { deleteRightsWarning } from './delete-probe.js'
import { createS3Client } from './s3-client.js'
import {
  isConditionalConflict,
  isNotFound,
  isPreconditionFailed,
  isTransient,
  rejectsConditionalWrites,
  type S3Operation,
  S3Operations,
  s3Failure,
  storageFailure,
} from './s3-errors.js'
import { watchMultipartUploads } from './s3-multipart.js'
import { MultipartJournal } from './s3-multipart-journal.js'
import { endpointHost, parseS3Url } from './s3-url.js'
import {
  isBulkData,
  ObjectNotFoundError,
  type StorageBackend,
  type StorageSettings,
  type StoredObject,
} from './storage.js'

const DEFAULT_CONCURRENCY = 8
/** Larger objects go up in parts: a lost connection costs one part, not the whole object. */
const MULTIPART_THRESHOLD = 16 * 1024 * 1024
const PART_SIZE = 8 * 1024 * 1024
/** Our retries where the SDK's do not reach: a body cut off mid-read, a 409 between writers. */
const OWN_ATTEMPTS = 5
const DAY_MS = 24 * 60 * 60 * 1000

/**
 * A repository in an S3 bucket (AWS, or an S3-compatible service through storage.endpoint).
 *
 * Credentials come from the AWS SDK's default chain only — environment variables, shared
 * profile, web identity (OIDC), container and instance roles — and the chain reads the
 * process environment, not the `env` given to fromUrl (which supplies the default region).
 * Tests set AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY in process.env for that reason.
 */
export class S3Storage implements StorageBackend {
  readonly location: string
  readonly concurrency: number
  private readonly client: S3Client
  private readonly region: string
  private readonly secrets: string[]
  private readonly operations: S3Operations
  /** Cleared when the service answers that it does not implement If-None-Match. */
  private conditionalWrites = true
  /** Writes in progress per name, so that one client never races itself (see putIfAbsent). */
  private readonly writing = new Map<string, Promise<boolean>>()

  static fromUrl(url: string, settings: StorageSettings, env: NodeJS.ProcessEnv): S3Storage {
    const { bucket, prefix } = parseS3Url(url)
    return new S3Storage(bucket, prefix, settings, env)
  }

  constructor(
    private readonly bucket: string,
    /** '' or 'some/prefix/' */
    private readonly prefix: string,
    private readonly settings: StorageSettings = {},
    env: NodeJS.ProcessEnv = process.env,
  ) {
    this.region = settings.region || env.AWS_REGION || env.AWS_DEFAULT_REGION || 'us-east-1'
    this.concurrency = settings.concurrency ?? DEFAULT_CONCURRENCY
    const where = `s3://${bucket}${prefix ? `/${prefix.slice(0, -1)}` : ''}`
    this.location = settings.endpoint ? `${where} at ${endpointHost(settings.endpoint)}` : where
    this.operations = new S3Operations(bucket, prefix, this.location, settings)
    this.secrets = [env, process.env].flatMap((e) =>
      [e.AWS_SECRET_ACCESS_KEY, e.AWS_SESSION_TOKEN].filter((s): s is string => !!s),
    )
    this.client = createS3Client(settings, this.region)
    // Large objects go up in parts: aborted on interrupt, journaled for a cleanup after a kill.
    const journal = env.KLUIS_MULTIPART_JOURNAL
    watchMultipartUploads(
      this.client,
      { endpoint: settings.endpoint, region: this.region, pathStyle: settings.pathStyle ?? false },
      journal ? new MultipartJournal(journal) : undefined,
    )
  }

  async create(): Promise<'created' | 'exists'> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }))
      return 'exists'
    } catch (error) {
      if (!isNotFound(s3Failure(error)))
        throw this.failure(this.operations.ofBucket('check'), error)
    }
    const constraint = this.region !== 'us-east-1' && this.region !== 'auto'
    try {
      await this.client.send(
        new CreateBucketCommand({
          Bucket: this.bucket,
          ...(constraint
            ? {
                CreateBucketConfiguration: {
                  LocationConstraint: this.region as BucketLocationConstraint,
                },
              }
            : {}),
          ...(this.settings.objectLock ? { ObjectLockEnabledForBucket: true } : {}),
        }),
      )
      return 'created'
    } catch (error) {
      const { code } = s3Failure(error)
      if (code === 'BucketAlreadyOwnedByYou') return 'exists'
      if (code === 'BucketAlreadyExists') {
        throw new StorageError(
          `cannot create bucket ${this.bucket}: the name is taken by another account`,
          'bucket names are global: choose another one in `repository:`',
        )
      }
      throw this.failure(this.operations.ofBucket('create'), error)
    }
  }

  async posture(retentionDays: number): Promise<string[]> {
    const warnings: string[] = []
    const unanswered = (what: string, permission: string, error: unknown) => {
      const { status, code } = s3Failure(error)
      const why =
        status === 403 || code === 'AccessDenied'
          ? `the credentials lack ${permission}`
          : `the service did not answer (${status ? `${status} ` : ''}${code})`
      return `could not check ${what} of bucket ${this.bucket}: ${why}`
    }
    try {
      const versioning = await this.client.send(
        new GetBucketVersioningCommand({ Bucket: this.bucket }),
      )
      if (versioning.Status !== 'Enabled') {
        warnings.push(
          `versioning is ${versioning.Status === 'Suspended' ? 'suspended' : 'not enabled'} on bucket ${this.bucket}: a deleted or overwritten object cannot be recovered`,
        )
      }
    } catch (error) {
      warnings.push(unanswered('versioning', 's3:GetBucketVersioning', error))
    }
    try {
      const lock = await this.client.send(
        new GetObjectLockConfigurationCommand({ Bucket: this.bucket }),
      )
      const configuration = lock.ObjectLockConfiguration
      const rule = configuration?.Rule?.DefaultRetention
      const bucketDays = rule?.Days ?? (rule?.Years !== undefined ? rule.Years * 365 : undefined)
      const days = this.settings.objectLock?.days ?? bucketDays
      if (configuration?.ObjectLockEnabled !== 'Enabled') {
        warnings.push(this.noLock())
      } else if (days === undefined) {
        warnings.push(
          `object lock is enabled on bucket ${this.bucket} but neither a default retention nor storage.object-lock is set: objects are written without retention`,
        )
      } else if (days < retentionDays) {
        warnings.push(
          `object lock retention (${days} days) is shorter than the backup retention window (${retentionDays} days): older snapshots can be deleted`,
        )
      }
    } catch (error) {
      const { code } = s3Failure(error)
      if (code === 'ObjectLockConfigurationNotFoundError') warnings.push(this.noLock())
      else warnings.push(unanswered('object lock', 's3:GetBucketObjectLockConfiguration', error))
    }
    return [...warnings, ...(await deleteRightsWarning(this))]
  }

  private noLock(): string {
    return `object lock is not enabled on bucket ${this.bucket}: whoever holds credentials that may delete can destroy the backups`
  }

  /**
   * HEAD first (an existing chunk is not uploaded again), then a conditional PUT
   * (If-None-Match: *): 412 means another writer got there first. Where the service rejects the
   * header, this client remembers it and writes unconditionally after the HEAD. That is safe
   * for kluis: every object name is content-addressed (chunks, keys) or random (snapshots,
   * locks), so two writers racing for one name write the same bytes. Services that ignore the
   * header (s3rver) behave the same way. Writes of one name through this client are
   * serialized, so one client never races itself even without conditional writes.
   */
  async putIfAbsent(name: string, data: Buffer): Promise<boolean> {
    const previous = this.writing.get(name)
    const current = (previous ?? Promise.resolve(false))
      .catch(() => false)
      .then(() => this.write(name, data))
    this.writing.set(name, current)
    try {
      return await current
    } finally {
      if (this.writing.get(name) === current) this.writing.delete(name)
    }
  }

  private async write(name: string, data: Buffer): Promise<boolean> {
    const operation = this.operations.object('write', name)
    if (await this.exists(name, operation)) return false
    for (let attempt = 1; ; attempt++) {
      const conditional = this.conditionalWrites
      try {
        await this.upload(name, data, conditional)
        return true
      } catch (error) {
        const failure = s3Failure(error)
        if (conditional && isPreconditionFailed(failure)) {
          // A retried PUT can meet the object its own first attempt wrote: same bytes, ours.
          return failure.attempts > 1 ? await this.holds(name, data, operation) : false
        }
        if (conditional && rejectsConditionalWrites(failure, error)) {
          this.conditionalWrites = false
          continue
        }
        if (conditional && isConditionalConflict(failure) && attempt < OWN_ATTEMPTS) {
          await pause(attempt)
          continue
        }
        throw this.failure(operation, error)
      }
    }
  }

  private async upload(name: string, data: Buffer, conditional: boolean): Promise<void> {
    const params: PutObjectCommandInput = {
      Bucket: this.bucket,
      Key: this.key(name),
      Body: data,
      ContentType: 'application/octet-stream',
      ...(conditional ? { IfNoneMatch: '*' } : {}),
      ...this.writeOptions(name),
    }
    if (data.length <= MULTIPART_THRESHOLD) {
      await this.client.send(new PutObjectCommand({ ...params, ContentLength: data.length }))
      return
    }
    // lib-storage passes IfNoneMatch on to CompleteMultipartUpload, where the condition applies.
    await new Upload({
      client: this.client,
      params,
      partSize: PART_SIZE,
      queueSize: 2,
      leavePartsOnError: false,
    }).done()
  }

  /** Storage class, server-side encryption and object lock, for every object written. */
  private writeOptions(name: string): Partial<PutObjectCommandInput> {
    const { storageClass, serverSideEncryption, kmsKeyId, objectLock } = this.settings
    return {
      ...(storageClass && isBulkData(name) ? { StorageClass: storageClass as StorageClass } : {}),
      ...(serverSideEncryption ? { ServerSideEncryption: serverSideEncryption } : {}),
      ...(kmsKeyId ? { SSEKMSKeyId: kmsKeyId } : {}),
      ...(objectLock
        ? {
            ObjectLockMode: objectLock.mode,
            ObjectLockRetainUntilDate: new Date(Date.now() + objectLock.days * DAY_MS),
            // AWS requires Content-MD5 or a checksum on a PUT with retention.
            ChecksumAlgorithm: 'SHA256' as const,
          }
        : {}),
    }
  }

  private async exists(name: string, operation: S3Operation): Promise<boolean> {
    try {
      await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.key(name) }))
      return true
    } catch (error) {
      if (isNotFound(s3Failure(error))) return false
      throw this.failure(operation, error)
    }
  }

  /** Whether the stored object has exactly these bytes. */
  private async holds(name: string, data: Buffer, operation: S3Operation): Promise<boolean> {
    try {
      return (await this.get(name)).equals(data)
    } catch (error) {
      if (error instanceof ObjectNotFoundError) return false
      throw this.failure(operation, error)
    }
  }

  async get(name: string): Promise<Buffer> {
    const operation = this.operations.object('read', name)
    for (let attempt = 1; ; attempt++) {
      let response: GetObjectCommandOutput
      try {
        response = await this.client.send(
          new GetObjectCommand({ Bucket: this.bucket, Key: this.key(name) }),
        )
      } catch (error) {
        const failure = s3Failure(error)
        if (isNotFound(failure) && failure.code !== 'NoSuchBucket') {
          throw new ObjectNotFoundError(name)
        }
        throw this.failure(operation, error)
      }
      // The SDK retries a request until its response headers arrive; a body cut off or stalled
      // after that is retried here.
      try {
        const bytes = (await response.Body?.transformToByteArray()) ?? new Uint8Array()
        const body = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
        if (response.ContentLength !== undefined && body.length !== response.ContentLength) {
          throw Object.assign(new Error(`got ${body.length} of ${response.ContentLength} bytes`), {
            name: 'TruncatedBody',
          })
        }
        return body
      } catch (error) {
        if (attempt < OWN_ATTEMPTS && isTransient(s3Failure(error))) {
          await pause(attempt)
          continue
        }
        throw this.failure(operation, error)
      }
    }
  }

  async stat(name: string): Promise<{ size: number } | undefined> {
    try {
      const head = await this.client.send(
        new HeadObjectCommand({ Bucket: this.bucket, Key: this.key(name) }),
      )
      return { size: head.ContentLength ?? 0 }
    } catch (error) {
      // A HEAD answer has no body: a missing bucket looks like a missing object here.
      if (isNotFound(s3Failure(error))) return undefined
      throw this.failure(this.operations.object('check', name), error)
    }
  }

  async *list(prefix: string): AsyncIterable<StoredObject> {
    let token: string | undefined
    do {
      let page: ListObjectsV2CommandOutput
      try {
        page = await this.client.send(
          new ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: this.key(prefix),
            ...(token ? { ContinuationToken: token } : {}),
          }),
        )
      } catch (error) {
        throw this.failure(this.operations.list(prefix), error)
      }
      for (const object of page.Contents ?? []) {
        if (object.Key?.startsWith(this.prefix)) {
          yield { name: object.Key.slice(this.prefix.length), size: object.Size ?? 0 }
        }
      }
      if (page.IsTruncated && !page.NextContinuationToken) {
        throw new StorageError(
          `cannot list ${prefix || 'objects'} in ${this.location}: the service cut the listing short without a continuation token`,
        )
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined
    } while (token)
  }

  get objectLockDays(): number | undefined {
    return this.settings.objectLock?.days
  }

  async extendObjectLock(name: string, until: Date): Promise<void> {
    const lock = this.settings.objectLock
    if (!lock) return
    try {
      await this.client.send(
        new PutObjectRetentionCommand({
          Bucket: this.bucket,
          Key: this.key(name),
          Retention: { Mode: lock.mode, RetainUntilDate: until },
        }),
      )
    } catch (error) {
      throw this.failure(this.operations.object('lock', name), error)
    }
  }

  async delete(name: string): Promise<void> {
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.key(name) }))
    } catch (error) {
      const failure = s3Failure(error)
      if (isNotFound(failure) && failure.code !== 'NoSuchBucket') return
      throw this.failure(this.operations.object('delete', name), error)
    }
  }

  private key(name: string): string {
    if (name.startsWith('/') || name.split('/').some((part) => part === '..' || part === '.')) {
      throw new StorageError(`invalid object name ${name}`)
    }
    return this.prefix + name
  }

  private failure(operation: S3Operation, error: unknown): StorageError {
    return storageFailure(operation, this.bucket, error, this.secrets)
  }
}

function pause(attempt: number): Promise<void> {
  const ms = Math.random() * Math.min(5000, 100 * 2 ** attempt)
  return new Promise((resolve) => setTimeout(resolve, ms))
}
