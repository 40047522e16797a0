import {
  AnonymousCredential,
  BlobServiceClient,
  StorageSharedKeyCredential,
} from '@azure/storage-blob'
import { ConfigError, errorMessage } from '../core/errors.js'
import { type AzureAccess, scrubber } from './azure-errors.js'
import type { StorageSettings } from './storage.js'

const TIERS = ['Hot', 'Cool', 'Cold', 'Archive']

/** The credentials and service URL, resolved from the environment. `url` may hold a SAS: secret. */
export interface Connection {
  url: string
  credential: StorageSharedKeyCredential | AnonymousCredential
  access: AzureAccess
  /** Every form of the credential, to mask should a message echo one. */
  secrets: string[]
}

/** `azure://CONTAINER/OPTIONAL/PREFIX`; the prefix loses its outer slashes. */
export function parseAzureUrl(url: string): { container: string; prefix: string } {
  const match = /^azure:\/\/([^/?#]*)(?:\/([^?#]*))?$/i.exec(url)
  if (!match) {
    throw new ConfigError(
      `repository ${url.replace(/[?#].*$/, '')}… is not of the form azure://CONTAINER/PREFIX`,
      'give credentials in AZURE_STORAGE_* variables, never in the repository URL',
    )
  }
  const container = match[1] ?? ''
  if (!/^(?=.{3,63}$)[a-z0-9](?:-?[a-z0-9])*$/.test(container)) {
    throw new ConfigError(
      `'${container}' in repository ${url} is not a valid Azure container name`,
      'a container name has 3 to 63 lowercase letters, digits and single hyphens, and starts and ends with a letter or digit',
    )
  }
  return { container, prefix: (match[2] ?? '').replace(/^\/+|\/+$/g, '') }
}

/** Refuses the S3-only settings; returns the access tier for storage.storage-class. */
export function azureSettings(url: string, settings: StorageSettings): string | undefined {
  const encryption =
    'Azure Storage encrypts every blob at rest; customer-managed keys are set on the storage account'
  for (const [key, name, hint] of [
    ['region', 'region', 'the account name sets the region'],
    ['pathStyle', 'path-style', 'remove it'],
    ['serverSideEncryption', 'server-side-encryption', encryption],
    ['kmsKeyId', 'kms-key-id', encryption],
  ] as const) {
    if (settings[key] !== undefined) {
      throw new ConfigError(`storage.${name} applies to S3 only, not to ${url}`, hint)
    }
  }
  return accessTier(settings.storageClass)
}

/** The Azure access tier for storage.storage-class (any case), or undefined when unset. */
function accessTier(storageClass: string | undefined): string | undefined {
  if (storageClass === undefined) return undefined
  const tier = TIERS.find((t) => t.toLowerCase() === storageClass.toLowerCase())
  if (tier) return tier
  throw new ConfigError(
    `storage.storage-class '${storageClass}' is not an Azure access tier`,
    `use one of ${TIERS.join(', ')} (Archive blobs cannot be read until rehydrated)`,
  )
}

const VARIABLES =
  'AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT with AZURE_STORAGE_SAS_TOKEN or AZURE_STORAGE_KEY'

/**
 * Credentials from the environment, in this order: AZURE_STORAGE_CONNECTION_STRING (account key
 * or SAS, with its own endpoint); AZURE_STORAGE_ACCOUNT + AZURE_STORAGE_SAS_TOKEN;
 * AZURE_STORAGE_ACCOUNT + AZURE_STORAGE_KEY. The service URL is storage.endpoint when set
 * (Azurite, a sovereign cloud), else https://ACCOUNT.blob.core.windows.net.
 */
export function resolveConnection(
  env: NodeJS.ProcessEnv,
  endpoint: string | undefined,
): Connection {
  const connectionString = env.AZURE_STORAGE_CONNECTION_STRING?.trim()
  const account = env.AZURE_STORAGE_ACCOUNT?.trim()
  const sas = env.AZURE_STORAGE_SAS_TOKEN?.trim().replace(/^\?/, '')
  const key = env.AZURE_STORAGE_KEY?.trim()
  if (connectionString) {
    if (endpoint) {
      throw new ConfigError(
        'storage.endpoint is set, and so is AZURE_STORAGE_CONNECTION_STRING, which names its own endpoint',
        'put the endpoint in the connection string (BlobEndpoint=…), or use AZURE_STORAGE_ACCOUNT with a key or SAS token',
      )
    }
    const secrets = [connectionString, ...connectionStringSecrets(connectionString)]
    let client: BlobServiceClient
    try {
      client = BlobServiceClient.fromConnectionString(connectionString)
    } catch (error) {
      throw new ConfigError(
        `AZURE_STORAGE_CONNECTION_STRING is not a valid connection string: ${scrubber(secrets)(errorMessage(error))}`,
        "copy it from the storage account's Access keys page, or build one from a SAS (BlobEndpoint=…;SharedAccessSignature=…)",
      )
    }
    const credential = client.credential
    if (credential instanceof StorageSharedKeyCredential) {
      const access: AzureAccess = {
        kind: 'key',
        source: 'AZURE_STORAGE_CONNECTION_STRING (AccountKey)',
        account: client.accountName,
      }
      return { url: client.url, credential, access, secrets }
    }
    const token = new URL(client.url).search.slice(1)
    return {
      url: client.url,
      credential: new AnonymousCredential(),
      access: {
        kind: 'sas',
        source: 'AZURE_STORAGE_CONNECTION_STRING (SharedAccessSignature)',
        account: client.accountName,
        sas: sasFields(token),
      },
      secrets: [...secrets, token, ...signature(token)],
    }
  }
  if (!account) {
    throw new ConfigError(
      `no Azure credentials${sas || key ? ': AZURE_STORAGE_ACCOUNT is not set' : ''}; kluis reads ${VARIABLES}`,
      'in GitHub Actions pass them from secrets in `env:`; the least privilege is a container SAS with sp=rwdl (then the container must exist before `kluis init`)',
    )
  }
  if (!/^[a-z0-9]{3,24}$/.test(account)) {
    throw new ConfigError(
      `AZURE_STORAGE_ACCOUNT '${account}' is not a storage account name`,
      'a storage account name has 3 to 24 lowercase letters and digits',
    )
  }
  if (endpoint && /[?#]/.test(endpoint)) {
    throw new ConfigError(
      'storage.endpoint must be the plain blob service URL, without a query',
      'a SAS token goes in AZURE_STORAGE_SAS_TOKEN, never in the configuration',
    )
  }
  const base = (endpoint ?? `https://${account}.blob.core.windows.net`).replace(/\/+$/, '')
  if (sas) {
    return {
      url: `${base}?${sas}`,
      credential: new AnonymousCredential(),
      access: { kind: 'sas', source: 'AZURE_STORAGE_SAS_TOKEN', account, sas: sasFields(sas) },
      secrets: [sas, ...signature(sas)],
    }
  }
  if (key) {
    return {
      url: base,
      credential: new StorageSharedKeyCredential(account, key),
      access: { kind: 'key', source: 'AZURE_STORAGE_KEY', account },
      secrets: [key],
    }
  }
  throw new ConfigError(
    `AZURE_STORAGE_ACCOUNT is set, but neither AZURE_STORAGE_SAS_TOKEN nor AZURE_STORAGE_KEY`,
    `kluis reads ${VARIABLES}`,
  )
}

function connectionStringSecrets(connectionString: string): string[] {
  const out: string[] = []
  for (const part of connectionString.split(';')) {
    const [name, ...rest] = part.split('=')
    const value = rest.join('=')
    if (/^(AccountKey|SharedAccessSignature)$/i.test(name?.trim() ?? '') && value) {
      out.push(value, ...signature(value))
    }
  }
  return out
}

function signature(token: string): string[] {
  const sig = new URLSearchParams(token).get('sig')
  return sig ? [sig] : []
}

function sasFields(token: string): NonNullable<AzureAccess['sas']> {
  const query = new URLSearchParams(token)
  const fields: NonNullable<AzureAccess['sas']> = {}
  const resource = query.get('sr')
  const resourceTypes = query.get('srt')
  const permissions = query.get('sp')
  if (resource) fields.resource = resource
  if (resourceTypes) fields.resourceTypes = resourceTypes
  if (permissions) fields.permissions = permissions
  return fields
}
