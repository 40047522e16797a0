import { StorageError } from '../core/errors.js'
import { redactor } from '../core/redact.js'
import { NETWORK_ERROR_CODES } from './network-errors.js'

/** What a failed Azure SDK call tells us, read defensively (not every error is a RestError). */
export interface AzureFailure {
  /** The service's error code ('BlobNotFound', 'AuthorizationFailure'), or a Node error code. */
  code: string
  status: number | undefined
  /** The first line of the message: later lines carry request ids and signing details. */
  message: string
}

export function azureFailure(error: unknown): AzureFailure {
  const e = (error ?? {}) as {
    code?: unknown
    statusCode?: unknown
    message?: unknown
    name?: unknown
    details?: { errorCode?: unknown }
    response?: { headers?: { get?: (name: string) => string | undefined } }
  }
  const header = e.response?.headers?.get?.('x-ms-error-code')
  const code =
    (typeof e.details?.errorCode === 'string' ? e.details.errorCode : undefined) ??
    header ??
    (typeof e.code === 'string' ? e.code : undefined) ??
    (typeof e.name === 'string' && e.name !== 'Error' && e.name !== 'RestError'
      ? e.name
      : undefined) ??
    'Error'
  const text = typeof e.message === 'string' ? e.message : String(error)
  return {
    code,
    status: typeof e.statusCode === 'number' ? e.statusCode : undefined,
    message: text.split('\n')[0]?.trim() ?? '',
  }
}

export function isNotFound(failure: AzureFailure): boolean {
  return failure.code === 'BlobNotFound' || (failure.status === 404 && !isContainerMissing(failure))
}

export function isContainerMissing(failure: AzureFailure): boolean {
  return failure.code === 'ContainerNotFound'
}

/** The conditional write lost: the blob exists (Azure answers 409, some proxies 412). */
export function isAlreadyExists(failure: AzureFailure): boolean {
  return (
    failure.code === 'BlobAlreadyExists' ||
    failure.code === 'ConditionNotMet' ||
    failure.status === 412 ||
    (failure.status === 409 && failure.code === 'Error')
  )
}

/** The credentials themselves were refused (not merely short of a permission). */
export function isAuthenticationFailure(failure: AzureFailure): boolean {
  return authenticationCodes.has(failure.code) && failure.code !== 'AuthorizationFailure'
}

/** A 403 that says the credentials may not do this, as opposed to being wrong. */
export function isPermissionDenied(failure: AzureFailure): boolean {
  return (
    failure.code === 'AuthorizationPermissionMismatch' ||
    failure.code === 'AuthorizationResourceTypeMismatch'
  )
}

/** Removes SAS signatures, account keys and query strings (and the given secrets) from text. */
export function scrubber(secrets: Iterable<string>): (text: string) => string {
  const mask = redactor(secrets)
  return (text) =>
    mask(
      text
        .replace(/\b(https?:\/\/[^\s?"'<>]*)\?[^\s"'<>]*/gi, '$1')
        .replace(/((?:^|[?&;\s])(?:sig|AccountKey|SharedAccessSignature)=)[^&;\s"'<>]*/gi, '$1***'),
    )
}

/** How kluis reached the account, for hints: the variables the user set, and what they hold. */
export interface AzureAccess {
  kind: 'key' | 'sas'
  /** The environment variable(s) the credential came from, e.g. 'AZURE_STORAGE_SAS_TOKEN'. */
  source: string
  account: string
  /** A SAS token's signed resource (sr: 'c' for a container SAS), resource types and permissions. */
  sas?: { resource?: string; resourceTypes?: string; permissions?: string }
}

/** What kluis was doing, for messages and for the SAS permission a 403 points at. */
export interface AzureOperation {
  /** e.g. 'write chunks/ab/ab12… to azure://container/prefix (account a)' */
  doing: string
  /** The SAS permission letter(s) the operation needs: r, w/c, l, d. */
  permission: string
}

const authenticationCodes = new Set([
  'AuthenticationFailed',
  'AuthorizationFailure',
  'InvalidAuthenticationInfo',
  'NoAuthenticationInformation',
])

const permissionHints: Record<string, string> = {
  AuthorizationPermissionMismatch: 'the SAS token lacks a permission this operation needs',
  AuthorizationResourceTypeMismatch:
    'the account SAS must allow the container and object resource types (srt=co)',
  AuthorizationServiceMismatch: 'the SAS token must be for the blob service (ss includes b)',
  AuthorizationSourceIPMismatch: "this machine's IP address is outside the SAS token's range (sip)",
  AuthorizationProtocolMismatch: 'the SAS token allows HTTPS only: use an https endpoint',
}

/**
 * One StorageError for a failure the SDK's retries could not fix: it names the container, the
 * operation and the likely fix. Nothing secret goes in: a URL loses its query string (a SAS
 * signature travels there), and the key, token and connection string are masked should a
 * message echo them.
 */
export function storageFailure(
  operation: AzureOperation,
  container: string,
  access: AzureAccess,
  error: unknown,
  secrets: Iterable<string>,
): StorageError {
  if (error instanceof StorageError) return error
  const failure = azureFailure(error)
  const detail = scrubber(secrets)(failure.message)
  const status = failure.status ? `${failure.status} ` : ''
  const what = `cannot ${operation.doing}`
  const code = failure.code
  if (isContainerMissing(failure)) {
    return new StorageError(
      `${what}: container ${container} does not exist in storage account ${access.account}`,
      'run `kluis init` to create it, or correct the container name in `repository:` (and the account)',
    )
  }
  if (code === 'KeyBasedAuthenticationNotPermitted') {
    return new StorageError(
      `${what}: storage account ${access.account} does not allow access with an account key`,
      'use a SAS token (AZURE_STORAGE_ACCOUNT + AZURE_STORAGE_SAS_TOKEN), or allow shared key access on the account',
    )
  }
  if (authenticationCodes.has(code) || (failure.status === 401 && !permissionHints[code])) {
    // Azure answers a wrong key or SAS with AuthenticationFailed, and a request its network rules
    // block with AuthorizationFailure; Azurite answers a wrong key with AuthorizationFailure.
    const firewall = code === 'AuthorizationFailure'
    const credential =
      access.kind === 'key'
        ? `check the account key in ${access.source}: it must be a current key of account ${access.account} (Access keys in the portal)`
        : `the SAS token in ${access.source} may have expired, been revoked or be for another account: create a new one`
    return new StorageError(
      `${what}: storage account ${access.account} refused the ${firewall ? 'request' : 'credentials'} (${status}${code})`,
      firewall
        ? `${credential}; or the account's firewall does not admit this machine (Networking in the portal)`
        : credential,
    )
  }
  if (failure.status === 403 || permissionHints[code]) {
    const reason = permissionHints[code] ?? 'access denied'
    return new StorageError(
      `${what}: ${reason} (${status}${code})`,
      access.kind === 'sas'
        ? `kluis needs the SAS permissions r, w (or c), l and d (sp=rwdl), and this operation '${operation.permission}'; ${sasSummary(access)}`
        : `an account key may do anything, so the account's network rules or a resource lock refused it: check Networking and Locks of account ${access.account} in the portal`,
    )
  }
  if (code === 'BlobArchived' || code === 'BlobBeingRehydrated') {
    return new StorageError(
      `${what}: the blob is in the Archive tier and cannot be read until it is rehydrated`,
      'rehydrate the blobs to the Hot or Cool tier (az storage blob set-tier --rehydrate-priority High); use storage-class Cool or Cold for a repository that must stay readable',
    )
  }
  if (/immutab|legalhold/i.test(code)) {
    return new StorageError(
      `${what}: ${status}${code}: ${detail}`,
      'a blob under an immutability policy cannot be deleted or overwritten until it expires; storage.object-lock needs a container with version-level immutability support',
    )
  }
  if (code === 'ENOSUCHHOST') {
    return new StorageError(
      `${what}: ${detail}`,
      'check the account name (AZURE_STORAGE_ACCOUNT, or AccountName/BlobEndpoint in the connection string) and storage.endpoint',
    )
  }
  if (NETWORK_ERROR_CODES.has(code)) {
    return new StorageError(
      `${what}: the service could not be reached or stopped answering (${code}: ${detail})`,
      'check the endpoint and the network; on a slow link raise storage.timeout (seconds without progress)',
    )
  }
  if (failure.status !== undefined && failure.status >= 500) {
    return new StorageError(
      `${what}: the service kept failing (${status}${code}: ${detail})`,
      'try again later; a lower storage.concurrency eases throttling',
    )
  }
  return new StorageError(`${what}: ${status}${code}${detail ? `: ${detail}` : ''}`)
}

function sasSummary(access: AzureAccess): string {
  const sas = access.sas ?? {}
  if (sas.resource === 'c') return `this is a container SAS with sp=${sas.permissions ?? '?'}`
  return `this SAS has sp=${sas.permissions ?? '?'}${sas.resourceTypes ? ` and srt=${sas.resourceTypes}` : ''}`
}

/** The hint for a container kluis may not create, by credential kind. */
export function createHint(container: string, access: AzureAccess): string {
  const manual = `create it once yourself (az storage container create --name ${container} --account-name ${access.account})`
  if (access.kind === 'key') {
    return `an account key may do anything, so the account's network rules or a resource lock refused it: check Networking and Locks in the portal, or ${manual}`
  }
  if (access.sas?.resource === 'c') {
    return `a container SAS cannot create its container: ${manual}, or use an account SAS with resource type c (srt=co) and the permission c or w`
  }
  return `to create a container, an account SAS needs resource type c (srt includes c) and the permission c or w; ${sasSummary(access)}; or ${manual}`
}
