import { createHash, randomBytes } from 'node:crypto'
import { z } from 'zod'
import {
  type ChunkerParameters,
  defaultChunkerParameters,
  validateParameters,
} from '../chunker/fastcdc.js'
import { IntegrityError, RefusedError, StorageError } from '../core/errors.js'
import type { Reporter } from '../core/reporter.js'
import { fingerprintOf, type PrivateKey, type PublicKey } from '../crypto/keys.js'
import {
  decryptAndVerify,
  encryptAndSign,
  signCleartext,
  verifyCleartext,
} from '../crypto/signing.js'
import { ObjectNotFoundError, type StorageBackend } from '../storage/storage.js'
import {
  FORMAT_VERSION,
  manifestSchema,
  objectNames,
  type RepositoryConfig,
  repositoryConfigSchema,
  type SnapshotIndex,
  type SnapshotManifest,
  snapshotIndexSchema,
} from './format.js'

const dedupKeySchema = z.object({
  kluis: z.literal('dedup-key'),
  group: z.string(),
  key: z.string(),
})

/** The repository format on top of a storage backend. Knows objects, not sources. */
export class Repository {
  private constructor(
    readonly storage: StorageBackend,
    readonly config: RepositoryConfig,
  ) {}

  get chunker(): ChunkerParameters {
    const { min, avg, max } = this.config.chunker
    return { min, avg, max }
  }

  /** Creates config.json. Refuses to touch an existing repository. */
  static async init(
    storage: StorageBackend,
    chunker = defaultChunkerParameters,
  ): Promise<Repository> {
    const config: RepositoryConfig = {
      kluis: 'repository',
      version: FORMAT_VERSION,
      id: randomBytes(16).toString('hex'),
      created: new Date().toISOString(),
      chunker: { algorithm: 'fastcdc-gear32', ...chunker },
    }
    const created = await storage.putIfAbsent(
      objectNames.config,
      Buffer.from(`${JSON.stringify(config, null, 2)}\n`),
    )
    if (!created) {
      throw new RefusedError(
        `a repository already exists at ${storage.location}`,
        'use it as it is, or choose another repository location',
      )
    }
    return new Repository(storage, config)
  }

  static async open(storage: StorageBackend): Promise<Repository> {
    let raw: Buffer
    try {
      raw = await storage.get(objectNames.config)
    } catch (error) {
      if (error instanceof ObjectNotFoundError) {
        throw new StorageError(
          `there is no kluis repository at ${storage.location}`,
          'run `kluis init --config …` first, or check `repository:` in the configuration',
        )
      }
      throw error
    }
    const parsed = repositoryConfigSchema.safeParse(parseJson(raw, objectNames.config))
    if (!parsed.success) {
      const version = (parseJson(raw, objectNames.config) as { version?: unknown })?.version
      if (typeof version === 'number' && version !== FORMAT_VERSION) {
        throw new StorageError(
          `the repository at ${storage.location} has format version ${version}; this kluis reads version ${FORMAT_VERSION}`,
          'use a kluis release that supports that format',
        )
      }
      throw new IntegrityError(objectNames.config, 'is not a valid kluis repository configuration')
    }
    // config.json is not signed: refuse chunker parameters that would make cut points meaningless.
    const invalid = validateParameters(parsed.data.chunker)
    if (invalid)
      throw new IntegrityError(objectNames.config, `has invalid chunker parameters: ${invalid}`)
    return new Repository(storage, parsed.data)
  }

  /** Creates the group's dedup key unless it exists; returns whether it was created. */
  async createDedupKey(group: string, readers: PublicKey[], writer: PrivateKey): Promise<boolean> {
    const object = objectNames.dedupKey(group)
    if (await this.storage.stat(object)) return false
    const payload = { kluis: 'dedup-key', group, key: randomBytes(32).toString('base64') }
    const sealed = await encryptAndSign(
      Buffer.from(JSON.stringify(payload)),
      [...readers, writer.toPublic()],
      writer,
    )
    return this.storage.putIfAbsent(object, Buffer.from(sealed))
  }

  /** The group's secret dedup key, unwrapped with the writer's or a reader's private key. */
  async dedupKey(group: string, decryptionKeys: PrivateKey[], writer: PublicKey): Promise<Buffer> {
    const object = objectNames.dedupKey(group)
    let sealed: Buffer
    try {
      sealed = await this.storage.get(object)
    } catch (error) {
      if (error instanceof ObjectNotFoundError) {
        throw new StorageError(
          `the repository has no key for key group '${group}' (${object})`,
          'run `kluis init --config …` to create the keys of new groups',
        )
      }
      throw error
    }
    const plain = await decryptAndVerify(sealed, decryptionKeys, writer, object)
    const parsed = dedupKeySchema.safeParse(parseJson(Buffer.from(plain), object))
    if (!parsed.success || parsed.data.group !== group) {
      throw new IntegrityError(object, `is not the dedup key of group '${group}'`)
    }
    const key = Buffer.from(parsed.data.key, 'base64')
    if (key.length !== 32) throw new IntegrityError(object, 'holds a key of the wrong length')
    return key
  }

  /** Every stored chunk id with its stored size. */
  async listChunks(): Promise<Map<string, number>> {
    const chunks = new Map<string, number>()
    for await (const object of this.storage.list('chunks/')) {
      const id = object.name.slice(object.name.lastIndexOf('/') + 1)
      if (/^[0-9a-f]{64}$/.test(id)) chunks.set(id, object.size)
    }
    return chunks
  }

  putChunk(id: string, message: Buffer): Promise<boolean> {
    return this.storage.putIfAbsent(objectNames.chunk(id), message)
  }

  async chunkSize(id: string): Promise<number | undefined> {
    return (await this.storage.stat(objectNames.chunk(id)))?.size
  }

  getChunk(id: string): Promise<Buffer> {
    return this.getReferenced(objectNames.chunk(id))
  }

  /** An object that something signed refers to: its absence is an integrity problem. */
  private async getReferenced(object: string): Promise<Buffer> {
    try {
      return await this.storage.get(object)
    } catch (error) {
      if (error instanceof ObjectNotFoundError) {
        throw new IntegrityError(object, 'is missing from the repository')
      }
      throw error
    }
  }

  /**
   * Writes one manifest per key group (encrypted to that group's readers), then the signed
   * index. The index is written last: until it exists there is no snapshot, so an interrupted
   * backup leaves only unreferenced objects.
   */
  async writeSnapshot(
    index: Omit<SnapshotIndex, 'manifests' | 'writer' | 'repository'>,
    manifests: Array<{ manifest: SnapshotManifest; readers: PublicKey[] }>,
    writer: PrivateKey,
  ): Promise<SnapshotIndex> {
    const full: SnapshotIndex = {
      ...index,
      repository: this.config.id,
      writer: fingerprintOf(writer),
      manifests: {},
    }
    for (const { manifest, readers } of manifests) {
      const sealed = Buffer.from(
        await encryptAndSign(Buffer.from(JSON.stringify(manifest)), readers, writer),
      )
      await this.putNew(objectNames.manifest(index.id, manifest.group), sealed)
      full.manifests[manifest.group] = {
        size: sealed.length,
        sha256: createHash('sha256').update(sealed).digest('hex'),
      }
    }
    const signed = await signCleartext(JSON.stringify(full, null, 1), writer)
    await this.putNew(objectNames.index(index.id), Buffer.from(signed))
    return full
  }

  private async putNew(object: string, data: Buffer): Promise<void> {
    if (!(await this.storage.putIfAbsent(object, data))) {
      throw new StorageError(
        `${object} already exists in ${this.storage.location}`,
        'run the backup again',
      )
    }
  }

  /** Ids of all index objects in storage, verified or not. */
  async listSnapshotIds(): Promise<string[]> {
    const ids: string[] = []
    for await (const object of this.storage.list('snapshots/')) {
      const match = /^snapshots\/([0-9a-f]{32})\.json\.asc$/.exec(object.name)
      if (match?.[1]) ids.push(match[1])
    }
    return ids.sort()
  }

  /** Reads an index and verifies the writer's signature. Throws IntegrityError naming it. */
  async readIndex(id: string, writer: PublicKey): Promise<SnapshotIndex> {
    const object = objectNames.index(id)
    const armored = await this.getReferenced(object)
    const text = await verifyCleartext(armored.toString('utf8'), writer, object)
    const parsed = snapshotIndexSchema.safeParse(parseJson(Buffer.from(text), object))
    if (!parsed.success) throw new IntegrityError(object, 'is not a valid snapshot index')
    if (parsed.data.id !== id) {
      throw new IntegrityError(object, `names another snapshot (${parsed.data.id})`)
    }
    if (parsed.data.repository !== this.config.id) {
      throw new IntegrityError(object, 'belongs to another repository (it was copied here)')
    }
    return parsed.data
  }

  /**
   * The chunk ids an index names, read WITHOUT verifying it: for prune, which must not delete
   * what a damaged but genuine index still needs. Empty when the text is not an index at all.
   */
  async unverifiedChunkIds(id: string): Promise<string[]> {
    const text = (
      await this.storage.get(objectNames.index(id)).catch(() => Buffer.alloc(0))
    ).toString('utf8')
    const start = text.indexOf('{')
    const end = text.lastIndexOf('}')
    if (start < 0 || end < start) return []
    try {
      const parsed = snapshotIndexSchema.safeParse(JSON.parse(text.slice(start, end + 1)))
      if (!parsed.success) return []
      return parsed.data.sources.flatMap((s) =>
        s.streams.flatMap((st) => st.chunks.map(([c]) => c)),
      )
    } catch {
      return []
    }
  }

  /**
   * Every snapshot whose index carries a valid writer signature, oldest first. Objects that
   * fail are reported and left out, so nothing planted in storage is ever listed.
   */
  async listSnapshots(writer: PublicKey, reporter: Reporter): Promise<SnapshotIndex[]> {
    const snapshots: SnapshotIndex[] = []
    for (const id of await this.listSnapshotIds()) {
      try {
        snapshots.push(await this.readIndex(id, writer))
      } catch (error) {
        if (!(error instanceof IntegrityError)) throw error
        reporter.warn(`ignoring ${error.message}`)
      }
    }
    return snapshots.sort((a, b) => a.time.localeCompare(b.time) || a.id.localeCompare(b.id))
  }

  /** The manifest of one key group, verified against the signed index and the writer's signature. */
  async readManifest(
    index: SnapshotIndex,
    group: string,
    decryptionKeys: PrivateKey[],
    writer: PublicKey,
  ): Promise<SnapshotManifest> {
    const object = objectNames.manifest(index.id, group)
    const recorded = index.manifests[group]
    if (!recorded)
      throw new IntegrityError(
        objectNames.index(index.id),
        `names no manifest for key group '${group}'`,
      )
    const sealed = await this.getReferenced(object)
    if (createHash('sha256').update(sealed).digest('hex') !== recorded.sha256) {
      throw new IntegrityError(object, 'does not match the SHA-256 recorded in the signed index')
    }
    const plain = await decryptAndVerify(sealed, decryptionKeys, writer, object)
    const parsed = manifestSchema.safeParse(parseJson(Buffer.from(plain), object))
    if (!parsed.success) throw new IntegrityError(object, 'is not a valid snapshot manifest')
    if (parsed.data.snapshot !== index.id || parsed.data.group !== group) {
      throw new IntegrityError(
        object,
        `belongs to another snapshot or key group (${parsed.data.snapshot}, ${parsed.data.group})`,
      )
    }
    return parsed.data
  }
}

export function newSnapshotId(): string {
  return randomBytes(16).toString('hex')
}

function parseJson(raw: Buffer, object: string): unknown {
  try {
    return JSON.parse(raw.toString('utf8'))
  } catch {
    throw new IntegrityError(object, 'is not valid JSON')
  }
}
