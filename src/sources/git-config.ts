import { createHash, createHmac } from 'node:crypto'
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { z } from 'zod'
import type { SourceConfig } from '../config/config.js'
import { ConfigError, IntegrityError, SourceError } from '../core/errors.js'
import { plural } from '../core/format.js'
import { temporaryDirectory } from '../core/interrupt.js'
import { fingerprintOf } from '../crypto/keys.js'
import { decryptAndVerify, encryptAndSignArmored } from '../crypto/signing.js'
import { BackupsRepository } from './git/backups-repository.js'
import { type MatchedFile, matchedFiles } from './git/matched-files.js'
import {
  parseFacts,
  type RestoreSummary,
  type SourceContext,
  type SourceDriver,
  type SourceReading,
} from './source.js'

type GitConfigSource = Extract<SourceConfig, { type: 'git-config' }>

const fileFactsSchema = z.object({
  path: z.string(),
  size: z.number().int().nonnegative(),
  /** SHA-256 of the plaintext, also for secret files. */
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  secret: z.boolean(),
})

const gitConfigFactsSchema = z.object({
  engine: z.literal('git-config'),
  remote: z.string(),
  branch: z.string(),
  directory: z.string(),
  /** The commit that holds this snapshot's files; absent when no file matched yet. */
  commit: z
    .string()
    .regex(/^[0-9a-f]{40}$/)
    .optional(),
  files: z.array(fileFactsSchema),
})
export type GitConfigFacts = z.infer<typeof gitConfigFactsSchema>

/** A rejected push is retried after re-applying the files on the new tip, this many times. */
const PUSH_ATTEMPTS = 5
const SECRET_SUFFIX = '.asc'
/** The armor comment that lets an unchanged secret keep its ciphertext (and git its history). */
const STAMP_PREFIX = 'kluis-hmac-sha256 '

/**
 * Configuration files versioned in a git "backups" repository: plain files as they are, so that
 * reviewers read diffs; secret files as OpenPGP messages (NAME.asc) encrypted to the source's
 * readers and signed by the writer. One commit per backup that changed something; the snapshot
 * records the commit, and a restore reads that commit back and checks every file against the
 * SHA-256 in the manifest. No data streams: the git history is the copy.
 */
export const gitConfigDriver: SourceDriver<GitConfigSource> = {
  async read(config, context): Promise<SourceReading> {
    const where = `source '${config.name}'`
    const backup = context.backup
    if (!backup) throw new Error('git-config backups need the snapshot and its keys')
    const files = await matchedFiles(
      context.resolvePath('.'),
      config.paths,
      config.secret,
      context.reporter,
    )
    if (files.length === 0) {
      context.reporter.warn(`${where}: no file matches ${config.paths.join(', ')}`)
    }
    const directory = repositoryFolder(config)
    const temporary = temporaryDirectory(join(context.temporaryDirectory, 'kluis-git-'))
    try {
      const repository = await BackupsRepository.open({
        remote: config.remote,
        branch: config.branch,
        workTree: join(temporary.path, 'clone'),
        token: config.token || undefined,
        resolvePath: context.resolvePath,
        env: context.env,
        author: { name: 'kluis', email: `kluis@${backup.host}`, time: backup.time },
        where,
      })
      const message =
        `kluis backup ${backup.snapshotId.slice(0, 8)}: ${config.name} at ${backup.time} on ${backup.host}\n\n` +
        `Snapshot ${backup.snapshotId}; ${plural(files.length, 'file')}, ` +
        `${files.filter((f) => f.secret).length} of them encrypted.`
      let commit: string | undefined
      for (let attempt = 1; ; attempt++) {
        await repository.fetchTip()
        await mirror(files, join(repository.workTree, directory), backup)
        const created = await repository.commit(directory, message)
        commit = await repository.head()
        if (!created) break
        if ((await repository.push()) === 'pushed') {
          context.reporter.info(`${where}: committed ${created.slice(0, 12)} to ${config.branch}`)
          break
        }
        if (attempt === PUSH_ATTEMPTS) {
          throw new SourceError(
            `${where}: the backups repository kept moving: the push was rejected ${PUSH_ATTEMPTS} times`,
            'other writers push to the same branch all the time; run the backup again, or give this source its own branch',
          )
        }
        context.reporter.debug(`${where}: push rejected, re-applying on the new tip`)
      }
      const facts: GitConfigFacts = {
        engine: 'git-config',
        remote: config.remote,
        branch: config.branch,
        directory,
        ...(commit ? { commit } : {}),
        files: files.map((file) => ({
          path: file.path,
          size: file.data.length,
          sha256: sha256(file.data),
          secret: file.secret,
        })),
      }
      return {
        streams: [],
        facts: () => facts,
        commit: () => commit,
        close: temporary.remove,
      }
    } catch (error) {
      await temporary.remove()
      throw error
    }
  },

  async restore(_streams, directory, facts, context): Promise<RestoreSummary> {
    const expected = parseFacts(gitConfigFactsSchema, facts, 'git-config')
    const keys = context.restore
    if (!keys) throw new Error('git-config restores need the reader keys')
    if (!expected.commit) return { description: 'no files (none matched at backup time)' }
    const configured = keys.source?.type === 'git-config' ? keys.source : undefined
    const where = `source '${configured?.name ?? expected.directory}'`
    const temporary = temporaryDirectory(join(context.temporaryDirectory, 'kluis-git-'))
    try {
      const repository = await BackupsRepository.open({
        // The configured remote wins: the repository may have moved since the backup.
        remote: configured?.remote ?? expected.remote,
        branch: configured?.branch ?? expected.branch,
        workTree: join(temporary.path, 'clone'),
        token: configured?.token || undefined,
        resolvePath: context.resolvePath,
        env: context.env,
        author: { name: 'kluis', email: 'kluis@localhost', time: new Date().toISOString() },
        where,
      })
      await repository.fetchCommit(expected.commit)
      let secrets = 0
      for (const file of expected.files) {
        const stored = `${expected.directory}/${file.path}${file.secret ? SECRET_SUFFIX : ''}`
        const object = `${stored} at commit ${expected.commit.slice(0, 12)}`
        const raw = await repository.read(expected.commit, stored)
        const data = file.secret
          ? Buffer.from(
              await decryptAndVerify(raw.toString('utf8'), keys.readerKeys, keys.writer, object),
            )
          : raw
        if (sha256(data) !== file.sha256) {
          throw new IntegrityError(object, 'does not match the SHA-256 the snapshot recorded')
        }
        const path = join(directory, safeRelativePath(file.path))
        await mkdir(dirname(path), { recursive: true })
        await writeFile(path, data, { flag: 'wx', mode: file.secret ? 0o600 : 0o644 })
        if (file.secret) secrets++
      }
      return {
        description:
          `${plural(expected.files.length, 'file')} from commit ${expected.commit.slice(0, 12)}` +
          (secrets ? ` (${secrets} decrypted)` : ''),
      }
    } finally {
      await temporary.remove()
    }
  },
}

/**
 * Makes `folder` hold exactly `files`: plain files as they are, secrets as NAME.asc, anything
 * else removed. An unchanged secret keeps its ciphertext (a fresh encryption differs every
 * time): its armor carries an HMAC, keyed with the group's secret dedup key, of the readers and
 * the plaintext.
 */
async function mirror(
  files: MatchedFile[],
  folder: string,
  backup: NonNullable<SourceContext['backup']>,
): Promise<void> {
  const wanted = new Map<string, MatchedFile>()
  for (const file of files)
    wanted.set(file.secret ? `${file.path}${SECRET_SUFFIX}` : file.path, file)
  for (const existing of await listFiles(folder)) {
    if (!wanted.has(existing)) await rm(join(folder, existing))
  }
  const readers = backup.readers.map(fingerprintOf).sort().join(',')
  for (const [name, file] of wanted) {
    const path = join(folder, name)
    await mkdir(dirname(path), { recursive: true })
    if (!file.secret) {
      await writeFile(path, file.data)
      continue
    }
    const stamp =
      STAMP_PREFIX +
      createHmac('sha256', backup.dedupKey)
        .update(readers)
        .update('\0')
        .update(file.data)
        .digest('hex')
    const current = await readFile(path, 'utf8').catch(() => '')
    if (current.includes(`Comment: ${stamp}\n`)) continue
    await writeFile(
      path,
      await encryptAndSignArmored(file.data, backup.readers, backup.writer, stamp),
    )
  }
}

/** Files below `folder`, relative to it ('/'-separated); none when it does not exist. */
async function listFiles(folder: string): Promise<string[]> {
  const entries = await readdir(folder, { recursive: true, withFileTypes: true }).catch(() => [])
  return entries
    .filter((entry) => entry.isFile() || entry.isSymbolicLink())
    .map((entry) =>
      join(entry.parentPath, entry.name)
        .slice(folder.length + 1)
        .split('\\')
        .join('/'),
    )
}

/** The folder inside the backups repository: configured, or the source's name. */
function repositoryFolder(config: GitConfigSource): string {
  const folder = (config.directory ?? config.name).replace(/^\/+|\/+$/g, '')
  if (folder.split('/').some((part) => part === '..' || part === '.' || part === '')) {
    throw new ConfigError(
      `source '${config.name}': directory ${folder || '(empty)'} is not a folder inside the backups repository`,
      'use a relative folder such as app or services/app',
    )
  }
  return folder
}

/** A relative path from a manifest or the configuration: never absolute, never up and out. */
function safeRelativePath(path: string): string {
  const parts = path.split('/')
  if (path.startsWith('/') || parts.some((part) => part === '..' || part === '' || part === '.')) {
    throw new IntegrityError(path, 'is not a safe relative path')
  }
  return path
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex')
}
