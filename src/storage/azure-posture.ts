import type { BlobServiceClient, ContainerClient } from '@azure/storage-blob'
import { azureFailure } from './azure-errors.js'
import type { StorageSettings } from './storage.js'

export interface PostureInput {
  service: BlobServiceClient
  container: ContainerClient
  containerName: string
  /** The repository's prefix in the container, with its trailing slash ('' for none). */
  base: string
  location: string
  account: string
  objectLock: StorageSettings['objectLock']
  retentionDays: number
  /** Removes secrets from text that came from the service. */
  clean: (text: string) => string
}

/** How many blobs are sampled for version ids. */
const SAMPLE = 20

/**
 * What an auditor should know about the container, as warnings. Versioning is an account
 * setting that the data-plane API does not report: a blob written while it is on carries a
 * version id, so a sample of the repository's blobs tells. Blob soft delete comes from the
 * blob service's properties, which only an account key or an account SAS for the service may
 * read. Immutability comes from the container's properties; the length of a container-level
 * policy is not readable with data-plane credentials. Nothing here throws: a check that fails
 * (or a service that does not implement it, like Azurite) becomes a warning saying so.
 */
export async function azurePosture(input: PostureInput): Promise<string[]> {
  const checks = [versioning, softDelete, immutability]
  const warnings: string[] = []
  for (const check of checks) warnings.push(...(await check(input)))
  return warnings
}

async function versioning(input: PostureInput): Promise<string[]> {
  try {
    const page = await input.container
      .listBlobsFlat({ prefix: input.base, includeVersions: true })
      .byPage({ maxPageSize: SAMPLE })
      .next()
    const blobs = page.done ? [] : page.value.segment.blobItems
    if (blobs.length === 0) {
      return [
        `could not tell whether blob versioning is on for storage account ${input.account}: ${input.location} holds no blobs yet`,
      ]
    }
    if (blobs.some((blob) => blob.versionId)) return []
    return [
      `blob versioning appears to be off for storage account ${input.account} (no version id on the ${blobs.length} blob(s) sampled in ${input.location}): an overwritten or deleted blob cannot be recovered; enable versioning for blobs under Data protection`,
    ]
  } catch (error) {
    return [`could not check blob versioning for ${input.location}: ${reason(input, error)}`]
  }
}

async function softDelete(input: PostureInput): Promise<string[]> {
  try {
    const properties = await input.service.getProperties()
    const policy = properties.deleteRetentionPolicy
    if (policy === undefined) {
      return [
        `could not check blob soft delete for storage account ${input.account}: the service did not report it`,
      ]
    }
    if (!policy.enabled) {
      return [
        `blob soft delete is off for storage account ${input.account}: a deleted blob is gone at once; enable it under Data protection`,
      ]
    }
    return []
  } catch (error) {
    const failure = azureFailure(error)
    if (failure.status === 403) {
      return [
        `could not check blob soft delete for storage account ${input.account}: these credentials may not read the blob service's properties (403 ${failure.code}); that takes the account key or an account SAS with resource type s, so check it under Data protection in the portal`,
      ]
    }
    return [
      `could not check blob soft delete for storage account ${input.account}: ${reason(input, error)}`,
    ]
  }
}

async function immutability(input: PostureInput): Promise<string[]> {
  const { containerName, objectLock, retentionDays } = input
  let properties: Awaited<ReturnType<ContainerClient['getProperties']>>
  try {
    properties = await input.container.getProperties()
  } catch (error) {
    return [
      `could not check the immutability policy of container ${containerName}: ${reason(input, error)}`,
    ]
  }
  const versionLevel = properties.isImmutableStorageWithVersioningEnabled === true
  const containerPolicy = properties.hasImmutabilityPolicy === true
  const warnings: string[] = []
  if (objectLock) {
    if (!versionLevel) {
      warnings.push(
        `storage.object-lock is set, but container ${containerName} does not report version-level immutability support, which Azure needs to keep a retention period per blob: enable it on the container`,
      )
    }
    if (objectLock.days < retentionDays) {
      warnings.push(
        `storage.object-lock keeps blobs for ${objectLock.days} days, less than the retention window of ${retentionDays} days: older backups can be deleted before retention would remove them`,
      )
    }
  } else if (containerPolicy) {
    warnings.push(
      `container ${containerName} has an immutability policy whose period kluis cannot read: make sure it keeps blobs at least ${retentionDays} days (Access policy of the container in the portal)`,
    )
  } else {
    warnings.push(
      `container ${containerName} has no immutability policy: credentials that may delete can destroy every backup; set storage.object-lock to at least ${retentionDays} days (on a container with version-level immutability), or a time-based retention policy`,
    )
  }
  return warnings
}

function reason(input: PostureInput, error: unknown): string {
  const failure = azureFailure(error)
  const status = failure.status ? `${failure.status} ` : ''
  const detail = input.clean(failure.message)
  return `the service did not answer (${status}${failure.code}${detail ? `: ${detail}` : ''})`
}
