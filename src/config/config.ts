import { readFile } from 'node:fs/promises'
import { dirname, resolve } from 'node:path'
import { parse as parseYaml } from 'yaml'
import { z } from 'zod'
import { ConfigError } from '../core/errors.js'
import { parseDuration, type RetentionPolicy } from '../retention/policy.js'
import type { StorageSettings } from '../storage/storage.js'

/**
 * The user's configuration (kluis.yml). `${VAR}` in any string value is replaced from the
 * environment after the YAML is parsed, so a multi-line secret cannot change the YAML's shape.
 * A variable that is unset is an error when the value is used, not before: a restore on a
 * laptop must not need the backup job's writer key.
 */

const sourceName = z
  .string()
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9._-]*$/,
    'use letters, digits, ".", "_" and "-" (no spaces or slashes)',
  )

const group = z
  .string()
  .regex(/^[a-z0-9][a-z0-9_-]*$/, 'use lowercase letters, digits, "_" and "-"')

const keepCount = z.number().int().positive()

/** restic's forget rules; per source it replaces the global policy. */
const retentionSchema = z.strictObject({
  'keep-last': keepCount.optional(),
  'keep-hourly': keepCount.optional(),
  'keep-daily': keepCount.optional(),
  'keep-weekly': keepCount.optional(),
  'keep-monthly': keepCount.optional(),
  'keep-yearly': keepCount.optional(),
  /** A duration such as 7d or 1y6m: every snapshot that recent is kept. */
  'keep-within': z.string().min(1).optional(),
  /** IANA time zone of the calendar (days, months); default UTC. */
  timezone: z.string().min(1).optional(),
})
type RawRetention = z.infer<typeof retentionSchema>

const sourceSchema = z.discriminatedUnion('type', [
  z.strictObject({
    name: sourceName,
    type: z.literal('sqlite'),
    path: z.string().min(1),
    group: group.optional(),
    retention: retentionSchema.optional(),
  }),
  z.strictObject({
    name: sourceName,
    type: z.literal('files'),
    path: z.string().min(1),
    exclude: z.array(z.string()).default([]),
    group: group.optional(),
    retention: retentionSchema.optional(),
  }),
  z.strictObject({
    name: sourceName,
    type: z.literal('postgres'),
    /** Checked when the source is backed up: a restore elsewhere need not set its variable. */
    url: z.string(),
    /** `all`: every database that accepts connections, except templates; or a list of names. */
    databases: z.union([z.literal('all'), z.array(z.string().min(1)).min(1)]).optional(),
    /** Also roles and tablespaces (pg_dumpall --globals-only). */
    globals: z.boolean().default(false),
    group: group.optional(),
    retention: retentionSchema.optional(),
  }),
  z.strictObject({
    name: sourceName,
    type: z.literal('git-config'),
    /** Globs relative to the configuration file's folder: the files to version. */
    paths: z.array(z.string().min(1)).min(1),
    /** Globs (gitignore-style) of matched files that are stored encrypted. */
    secret: z.array(z.string().min(1)).default([]),
    /** The backups repository: https, ssh, file:// or a local path. */
    remote: z.string().min(1),
    branch: z.string().min(1).default('main'),
    /** The folder inside the backups repository (default: the source's name). */
    directory: z.string().min(1).optional(),
    /** For https remotes; sent per command through git's environment, never stored. */
    token: z.string().optional(),
    group: group.optional(),
    retention: retentionSchema.optional(),
  }),
  z.strictObject({
    name: sourceName,
    type: z.literal('mysql'),
    url: z.string(),
    group: group.optional(),
    retention: retentionSchema.optional(),
  }),
])

const configSchema = z.strictObject({
  repository: z.string().min(1),
  keys: z.strictObject({
    readers: z.array(z.string()).min(1, 'name at least one reader public key'),
    writer: z.string().optional(),
    'writer-public': z.string().min(1),
    groups: z.record(group, z.strictObject({ readers: z.array(z.string()).min(1) })).optional(),
  }),
  sources: z.array(sourceSchema).min(1, 'configure at least one source'),
  compression: z.strictObject({ level: z.number().int().min(1).max(19) }).optional(),
  retention: retentionSchema.optional(),
  /** What the backups must achieve: check reports what misses it. */
  objectives: z
    .strictObject({
      rpo: z.string().min(1).optional(),
      rto: z.string().min(1).optional(),
      'key-max-age': z.string().min(1).optional(),
    })
    .optional(),
  /** Scratch servers that `kluis restore-test` restores database sources into. */
  'restore-test': z
    .strictObject({
      'postgres-url': z.string().optional(),
      'mysql-url': z.string().optional(),
    })
    .optional(),
  storage: z
    .strictObject({
      endpoint: z.url({ protocol: /^https?$/ }).optional(),
      region: z.string().min(1).optional(),
      'path-style': z.boolean().optional(),
      'storage-class': z.string().min(1).optional(),
      'server-side-encryption': z.enum(['AES256', 'aws:kms', 'aws:kms:dsse']).optional(),
      'kms-key-id': z.string().min(1).optional(),
      'object-lock': z
        .strictObject({
          mode: z.enum(['GOVERNANCE', 'COMPLIANCE']),
          days: z.number().int().positive(),
        })
        .optional(),
      concurrency: z.number().int().min(1).max(64).optional(),
      timeout: z.number().positive().optional(),
    })
    .optional(),
})

export type SourceConfig = z.infer<typeof sourceSchema>

export interface KluisConfig {
  /** The configuration file; relative paths in it are relative to its folder. */
  file: string
  baseDirectory: string
  repository: string
  keys: {
    /** Reader public keys per key group; 'default' holds keys.readers. */
    readers: Map<string, string[]>
    writer: string | undefined
    writerPublic: string
  }
  sources: SourceConfig[]
  compressionLevel: number
  storage: StorageSettings
  /** The global retention policy (sources may have their own). */
  retention: RetentionPolicy
  /** Milliseconds; undefined when not set. */
  objectives: { rpo?: number; rto?: number; keyMaxAge?: number }
  /** `restore-test:` scratch servers; read through `restoreTestUrl`, which checks `${VAR}`. */
  restoreTest: { postgresUrl?: string; mysqlUrl?: string }
  /** Config paths whose `${VAR}` was unset, with the variable's name. */
  unset: Map<string, string>
}

export const DEFAULT_GROUP = 'default'

/** Settings whose `${VAR}` may stay unset until the source is backed up. */
const SOURCE_URL = /^sources\.\d+\.(url|token)$/

/** Scratch server URLs whose `${VAR}` may stay unset until a restore test needs them. */
const RESTORE_TEST_URL = /^restore-test\.(postgres|mysql)-url$/

export async function loadConfig(
  file: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<KluisConfig> {
  const path = resolve(file)
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    throw new ConfigError(
      code === 'ENOENT'
        ? `configuration file ${file} does not exist`
        : `cannot read ${file}: ${code}`,
      'pass --config PATH (default kluis.yml in the current directory)',
    )
  }
  return parseConfig(text, path, env)
}

export function parseConfig(text: string, path: string, env: NodeJS.ProcessEnv): KluisConfig {
  let raw: unknown
  try {
    raw = parseYaml(text)
  } catch (error) {
    const detail = error instanceof Error ? error.message.split('\n')[0] : String(error)
    throw new ConfigError(`${path} is not valid YAML: ${detail}`)
  }
  const unset = new Map<string, string>()
  const substituted = substitute(raw, '', env, unset)
  const parsed = configSchema.safeParse(substituted)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    const where = issue?.path.join('.') || '(top level)'
    const variable = unset.get(where)
    if (variable) throw unsetVariable(variable, where)
    throw new ConfigError(
      `${path}: ${where}: ${issue?.message ?? 'invalid'}`,
      'see README.md for the configuration format',
    )
  }
  const config = parsed.data
  for (const [where, variable] of unset) {
    if (where !== 'keys.writer' && !SOURCE_URL.test(where) && !RESTORE_TEST_URL.test(where)) {
      throw unsetVariable(variable, where)
    }
  }
  const names = new Set<string>()
  for (const source of config.sources) {
    if (names.has(source.name))
      throw new ConfigError(`${path}: two sources are named '${source.name}'`)
    names.add(source.name)
  }
  const readers = new Map<string, string[]>([[DEFAULT_GROUP, config.keys.readers]])
  for (const [name, groupConfig] of Object.entries(config.keys.groups ?? {})) {
    readers.set(name, groupConfig.readers)
  }
  for (const source of config.sources) {
    if (source.group && !readers.has(source.group)) {
      throw new ConfigError(
        `${path}: source '${source.name}' names key group '${source.group}', which keys.groups does not define`,
      )
    }
  }
  return {
    file: path,
    baseDirectory: dirname(path),
    repository: config.repository,
    keys: {
      readers,
      writer: config.keys.writer || undefined,
      writerPublic: config.keys['writer-public'],
    },
    sources: config.sources,
    compressionLevel: config.compression?.level ?? 3,
    storage: storageSettings(config.storage),
    retention: retentionPolicy(config.retention, `${path}: retention`),
    objectives: objectives(config.objectives, path),
    restoreTest: {
      ...(config['restore-test']?.['postgres-url']
        ? { postgresUrl: config['restore-test']['postgres-url'] }
        : {}),
      ...(config['restore-test']?.['mysql-url']
        ? { mysqlUrl: config['restore-test']['mysql-url'] }
        : {}),
    },
    unset,
  }
}

/** The policy for a source: its own when it has one, else the global one. */
export function retentionFor(
  config: KluisConfig,
  source: SourceConfig | undefined,
): RetentionPolicy {
  if (source?.retention) {
    return retentionPolicy(source.retention, `${config.file}: source '${source.name}' retention`)
  }
  return config.retention
}

function retentionPolicy(raw: RawRetention | undefined, where: string): RetentionPolicy {
  if (!raw) return {}
  const policy: RetentionPolicy = {}
  if (raw['keep-last']) policy.keepLast = raw['keep-last']
  if (raw['keep-hourly']) policy.keepHourly = raw['keep-hourly']
  if (raw['keep-daily']) policy.keepDaily = raw['keep-daily']
  if (raw['keep-weekly']) policy.keepWeekly = raw['keep-weekly']
  if (raw['keep-monthly']) policy.keepMonthly = raw['keep-monthly']
  if (raw['keep-yearly']) policy.keepYearly = raw['keep-yearly']
  if (raw['keep-within']) {
    // Checked here, kept as text: months and years then follow the calendar, and the reason
    // shows what the user wrote.
    duration(raw['keep-within'], `${where}.keep-within`)
    policy.keepWithin = raw['keep-within']
  }
  if (raw.timezone) policy.timezone = raw.timezone
  return policy
}

function objectives(
  raw: z.infer<typeof configSchema>['objectives'],
  path: string,
): KluisConfig['objectives'] {
  const result: KluisConfig['objectives'] = {}
  if (raw?.rpo) result.rpo = duration(raw.rpo, `${path}: objectives.rpo`)
  if (raw?.rto) result.rto = duration(raw.rto, `${path}: objectives.rto`)
  if (raw?.['key-max-age']) {
    result.keyMaxAge = duration(raw['key-max-age'], `${path}: objectives.key-max-age`)
  }
  return result
}

/** A duration setting; the error names the setting. */
function duration(text: string, where: string): number {
  try {
    return parseDuration(text)
  } catch (error) {
    if (error instanceof ConfigError)
      throw new ConfigError(`${where}: ${error.message}`, error.hint)
    throw error
  }
}

function storageSettings(raw: z.infer<typeof configSchema>['storage']): StorageSettings {
  if (!raw) return {}
  const settings: StorageSettings = {}
  if (raw.endpoint) settings.endpoint = raw.endpoint
  if (raw.region) settings.region = raw.region
  if (raw['path-style'] !== undefined) settings.pathStyle = raw['path-style']
  if (raw['storage-class']) settings.storageClass = raw['storage-class']
  if (raw['server-side-encryption']) settings.serverSideEncryption = raw['server-side-encryption']
  if (raw['kms-key-id']) settings.kmsKeyId = raw['kms-key-id']
  if (raw['object-lock']) settings.objectLock = raw['object-lock']
  if (raw.concurrency) settings.concurrency = raw.concurrency
  if (raw.timeout) settings.timeout = raw.timeout
  return settings
}

function substitute(
  value: unknown,
  where: string,
  env: NodeJS.ProcessEnv,
  unset: Map<string, string>,
): unknown {
  if (typeof value === 'string') {
    return value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, name: string) => {
      const replacement = env[name]
      if (replacement === undefined || replacement === '') {
        unset.set(where, name)
        return ''
      }
      return replacement
    })
  }
  if (Array.isArray(value))
    return value.map((item, i) => substitute(item, join(where, i), env, unset))
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value).map(([key, item]) => [
        key,
        substitute(item, join(where, key), env, unset),
      ]),
    )
  }
  return value
}

function join(where: string, key: string | number): string {
  return where ? `${where}.${key}` : String(key)
}

function unsetVariable(variable: string, where: string): ConfigError {
  return new ConfigError(
    `environment variable ${variable} is not set (used in ${where})`,
    `set ${variable}, or change ${where} in the configuration`,
  )
}

/** The writer key text; an error naming the fix when it is not configured. */
export function requireWriterKey(config: KluisConfig): string {
  const variable = config.unset.get('keys.writer')
  if (variable) throw unsetVariable(variable, 'keys.writer')
  if (!config.keys.writer) {
    throw new ConfigError(
      'keys.writer is not set: backups are signed with the writer private key',
      'set keys.writer to the key file, or to ${KLUIS_WRITER_KEY} in CI',
    )
  }
  return config.keys.writer
}

/** Fails, naming the variable, when a setting the source needs for a backup is unset. */
export function requireSourceSettings(config: KluisConfig, source: SourceConfig): void {
  const prefix = `sources.${config.sources.indexOf(source)}.`
  for (const [where, variable] of config.unset) {
    if (where.startsWith(prefix)) throw unsetVariable(variable, where)
  }
}

/**
 * The scratch server URL `kluis restore-test` restores a database source into; an error naming
 * the setting (and its unset variable) when it is missing.
 */
export function restoreTestUrl(config: KluisConfig, scheme: 'postgres' | 'mysql'): string {
  const where = `restore-test.${scheme}-url`
  const variable = config.unset.get(where)
  if (variable) throw unsetVariable(variable, where)
  const url = scheme === 'postgres' ? config.restoreTest.postgresUrl : config.restoreTest.mysqlUrl
  if (!url) {
    throw new ConfigError(
      `${where} is not set: restore-testing a ${scheme} source needs a scratch server`,
      `set ${where} in the configuration (e.g. to \${RESTORE_TEST_${scheme === 'postgres' ? 'PG' : 'MYSQL'}_URL}); kluis creates a temporary database on it and drops it afterwards`,
    )
  }
  return url
}

export function sourceGroup(source: SourceConfig): string {
  return source.group ?? DEFAULT_GROUP
}

export function resolvePath(config: KluisConfig, path: string): string {
  return resolve(config.baseDirectory, path)
}
