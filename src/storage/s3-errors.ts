import { STATUS_CODES } from 'node:http'
import { StorageError } from '../core/errors.js'
import { redactor } from '../core/redact.js'
import { NETWORK_ERROR_CODES } from './network-errors.js'
import type { StorageSettings } from './storage.js'

/** What the AWS SDK tells us about a failed request, read defensively (not every error is the SDK's). */
export interface S3Failure {
  /** The S3 error code ('AccessDenied', 'NoSuchKey'), the SDK's error name, or a Node error code. */
  code: string
  status: number | undefined
  message: string
  /** How many times the SDK sent the request (retries included). */
  attempts: number
  /** The bucket's region, when the service named it (a redirect or a malformed authorization). */
  region: string | undefined
}

export function s3Failure(error: unknown): S3Failure {
  const e = (error ?? {}) as {
    name?: string
    Code?: string
    code?: string
    message?: string
    Region?: string
    $metadata?: { httpStatusCode?: number; attempts?: number }
    $response?: { headers?: Record<string, string | undefined> }
  }
  const nodeCode = typeof e.code === 'string' ? e.code : undefined
  const name = e.name && e.name !== 'Error' ? e.name : undefined
  const message = typeof e.message === 'string' ? e.message : String(error)
  const region =
    e.$response?.headers?.['x-amz-bucket-region'] ??
    (typeof e.Region === 'string' ? e.Region : undefined) ??
    /expecting '([a-z0-9-]+)'/.exec(message)?.[1]
  const status = e.$metadata?.httpStatusCode
  let code = e.Code ?? name ?? nodeCode ?? 'Error'
  // A HEAD answer has no body to name the error: name it after the status (403 → Forbidden).
  if (status && (code === 'Unknown' || code === 'UnknownError' || code === String(status))) {
    code = (STATUS_CODES[status] ?? 'Error').replace(/[^A-Za-z]/g, '')
  }
  return {
    code,
    status,
    message,
    attempts: e.$metadata?.attempts ?? 1,
    region,
  }
}

export function isNotFound(failure: S3Failure): boolean {
  return (
    failure.status === 404 ||
    failure.code === 'NoSuchKey' ||
    failure.code === 'NotFound' ||
    failure.code === 'NoSuchBucket'
  )
}

/** A write the service refused because the object exists (If-None-Match: *). */
export function isPreconditionFailed(failure: S3Failure): boolean {
  return failure.status === 412 || failure.code === 'PreconditionFailed'
}

/** Two conditional writes of one name raced; AWS asks the loser to retry. */
export function isConditionalConflict(failure: S3Failure): boolean {
  return failure.code === 'ConditionalRequestConflict' || failure.status === 409
}

/** The service does not implement conditional writes and says so (instead of ignoring them). */
export function rejectsConditionalWrites(failure: S3Failure, error: unknown): boolean {
  if (failure.status === 501 || failure.code === 'NotImplemented') return true
  if (failure.status !== 400) return false
  const fields = error as { ArgumentName?: unknown; Header?: unknown; HeaderName?: unknown }
  const text = [failure.message, fields.ArgumentName, fields.Header, fields.HeaderName].join(' ')
  return /if-none-match/i.test(text)
}

/** A failure worth another try: the network, a timeout, or the service being unwell. */
export function isTransient(failure: S3Failure): boolean {
  return (
    NETWORK_ERROR_CODES.has(failure.code) ||
    failure.message === 'aborted' ||
    (failure.status !== undefined && failure.status >= 500) ||
    failure.code === 'SlowDown' ||
    failure.code === 'TruncatedBody'
  )
}

const credentialCodes = new Set([
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'ExpiredToken',
  'TokenRefreshRequired',
  'InvalidToken',
  'InvalidClientTokenId',
  'AuthorizationHeaderMalformed',
])

const credentialChain =
  'kluis uses the AWS SDK default credential chain: AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN), ' +
  'AWS_PROFILE and ~/.aws/credentials, or web identity (AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE, as ' +
  'aws-actions/configure-aws-credentials sets up in GitHub Actions)'

/** What kluis was doing, for messages and for the IAM permission a 403 points at. */
export interface S3Operation {
  /** e.g. 'write chunks/ab/ab12… to s3://bucket/prefix' */
  doing: string
  /** The IAM action(s) the operation needs, e.g. 's3:PutObject'. */
  permission: string
  /** The IAM resource, e.g. 'arn:aws:s3:::bucket/prefix/*'. */
  resource: string
  /** Extra words for a 403, e.g. why HeadObject needs s3:ListBucket too. */
  note?: string
}

/** The operations of one repository, described for messages and for a 403's IAM permission. */
export class S3Operations {
  constructor(
    private readonly bucket: string,
    private readonly prefix: string,
    private readonly location: string,
    private readonly settings: StorageSettings,
  ) {}

  object(verb: 'write' | 'read' | 'check' | 'delete' | 'lock', name: string): S3Operation {
    const resource = `arn:aws:s3:::${this.bucket}/${this.prefix}*`
    const kms = this.settings.serverSideEncryption?.startsWith('aws:kms')
    switch (verb) {
      case 'write':
        return {
          doing: `write ${name} to ${this.location}`,
          permission: [
            's3:PutObject',
            ...(this.settings.objectLock ? ['s3:PutObjectRetention'] : []),
            ...(kms ? ['kms:GenerateDataKey'] : []),
          ].join(' + '),
          resource,
          note: 'kluis first asks whether the object exists (HeadObject), which needs s3:GetObject, and s3:ListBucket on the bucket for a missing object to answer 404 rather than 403',
        }
      case 'read':
        return {
          doing: `read ${name} from ${this.location}`,
          permission: kms ? 's3:GetObject + kms:Decrypt' : 's3:GetObject',
          resource,
        }
      case 'check':
        return {
          doing: `check ${name} in ${this.location}`,
          permission: 's3:GetObject',
          resource,
          note: `a missing object answers 403 rather than 404 without s3:ListBucket on arn:aws:s3:::${this.bucket}`,
        }
      case 'lock':
        return {
          doing: `extend the object lock of ${name} in ${this.location}`,
          permission: 's3:PutObjectRetention',
          resource,
        }
      case 'delete':
        return {
          doing: `delete ${name} from ${this.location}`,
          permission: 's3:DeleteObject',
          resource,
          ...(this.settings.objectLock
            ? { note: 'an object under object lock cannot be deleted before its retention ends' }
            : {}),
        }
    }
  }

  list(prefix: string): S3Operation {
    return {
      doing: `list ${prefix || 'objects'} in ${this.location}`,
      permission: 's3:ListBucket',
      resource: `arn:aws:s3:::${this.bucket}`,
    }
  }

  ofBucket(verb: 'check' | 'create'): S3Operation {
    const resource = `arn:aws:s3:::${this.bucket}`
    return verb === 'check'
      ? {
          doing: `check bucket ${this.bucket} (${this.location})`,
          permission: 's3:ListBucket',
          resource,
          note: 'or the bucket belongs to another account',
        }
      : {
          doing: `create bucket ${this.bucket} (${this.location})`,
          permission: this.settings.objectLock
            ? 's3:CreateBucket + s3:PutBucketObjectLockConfiguration + s3:PutBucketVersioning'
            : 's3:CreateBucket',
          resource,
          note: 'or create the bucket yourself and run `kluis init` again',
        }
  }
}

/**
 * One StorageError for a failure the SDK's retries could not fix: it names the bucket, the
 * operation and the likely fix. Nothing secret goes in: SDK messages may carry request ids
 * (fine) but a presigned URL's signature, credential or token is removed, and the secret key and
 * session token, should a service echo them, are masked.
 */
export function storageFailure(
  operation: S3Operation,
  bucket: string,
  error: unknown,
  secrets: Iterable<string>,
): StorageError {
  if (error instanceof StorageError) return error
  const failure = s3Failure(error)
  const clean = scrubber(secrets)
  const detail = clean(failure.message)
  const status = failure.status ? `${failure.status} ` : ''
  const what = `cannot ${operation.doing}`
  const code = failure.code
  if (code === 'NoSuchBucket') {
    return new StorageError(
      `${what}: bucket ${bucket} does not exist`,
      'run `kluis init` to create it, or correct the bucket name in `repository:` (and storage.endpoint)',
    )
  }
  if (
    code === 'PermanentRedirect' ||
    code === 'IllegalLocationConstraintException' ||
    (code === 'AuthorizationHeaderMalformed' && failure.region) ||
    failure.status === 301
  ) {
    return new StorageError(
      `${what}: bucket ${bucket} is in another region${failure.region ? ` (${failure.region})` : ''}`,
      failure.region
        ? `set storage.region to ${failure.region}`
        : "set storage.region to the bucket's region (see the bucket's properties in the console)",
    )
  }
  if (code === 'CredentialsProviderError') {
    return new StorageError(
      `${what}: no AWS credentials were found`,
      `${credentialChain}; set one of them up`,
    )
  }
  if (code === 'InvalidRequest' && /object lock/i.test(failure.message)) {
    return new StorageError(
      `${what}: bucket ${bucket} does not have object lock enabled (${detail})`,
      'object lock can only be turned on for a bucket created with it (or through AWS support): use such a bucket, or remove storage.object-lock',
    )
  }
  if (credentialCodes.has(code)) {
    const expired = code === 'ExpiredToken' || code === 'TokenRefreshRequired'
    return new StorageError(
      `${what}: the credentials were refused (${status}${code}${expired ? ': they have expired' : ''})`,
      `${expired ? 'refresh the session credentials. ' : ''}${credentialChain}; check that they are set and current`,
    )
  }
  if (failure.status === 403 || code === 'AccessDenied' || code === 'Forbidden') {
    return new StorageError(
      `${what}: access denied (${status}${code})`,
      `the credentials need the IAM permission ${operation.permission} on ${operation.resource}${operation.note ? `; ${operation.note}` : ''}`,
    )
  }
  if (NETWORK_ERROR_CODES.has(code) || failure.message === 'aborted') {
    return new StorageError(
      `${what}: the service could not be reached or stopped answering after ${failure.attempts} attempt(s) (${code}: ${detail})`,
      'check storage.endpoint and the network; on a slow link raise storage.timeout (seconds without progress)',
    )
  }
  if (isTransient(failure)) {
    return new StorageError(
      `${what}: the service kept failing after ${failure.attempts} attempt(s) (${status}${code}: ${detail})`,
      'try again later; a lower storage.concurrency eases throttling',
    )
  }
  return new StorageError(`${what}: ${status}${code}: ${detail}`)
}

/** Removes request-signing material and the given secret values from text. */
export function scrubber(secrets: Iterable<string>): (text: string) => string {
  const mask = redactor(secrets)
  return (text) =>
    mask(
      text
        .replace(/(X-Amz-(?:Signature|Credential|Security-Token)=)[^&\s"'<>]*/gi, '$1***')
        .replace(/(Credential=)[^,\s"'<>]+/g, '$1***')
        .replace(/(Signature=)[0-9a-f]{16,}/gi, '$1***'),
    )
}
