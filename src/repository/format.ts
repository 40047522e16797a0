import { z } from 'zod'

/** Repository format version 1: see docs/format.md, which is the reference for these shapes. */
export const FORMAT_VERSION = 1

export const objectNames = {
  config: 'config.json',
  dedupKey: (group: string) => `keys/${group}.pgp`,
  chunk: (id: string) => `chunks/${id.slice(0, 2)}/${id}`,
  index: (id: string) => `snapshots/${id}.json.asc`,
  /** One manifest per key group, encrypted to that group's readers only. */
  manifest: (id: string, group: string) => `snapshots/${id}.${group}.manifest.pgp`,
}

const hex64 = z.string().regex(/^[0-9a-f]{64}$/)
const snapshotId = z.string().regex(/^[0-9a-f]{32}$/)

export const repositoryConfigSchema = z.object({
  kluis: z.literal('repository'),
  version: z.literal(FORMAT_VERSION),
  /** Random id; every index names it, so an index copied from another repository is refused. */
  id: z.string().regex(/^[0-9a-f]{32}$/),
  created: z.string(),
  chunker: z.object({
    algorithm: z.literal('fastcdc-gear32'),
    min: z.number().int().positive(),
    avg: z.number().int().positive(),
    max: z.number().int().positive(),
  }),
})
export type RepositoryConfig = z.infer<typeof repositoryConfigSchema>

/** One chunk of a stream: [id, plaintext size, stored size]. */
export const chunkRefSchema = z.tuple([
  hex64,
  z.number().int().nonnegative(),
  z.number().int().positive(),
])
export type ChunkRef = z.infer<typeof chunkRefSchema>

export const indexStreamSchema = z.object({
  name: z.string(),
  size: z.number().int().nonnegative(),
  chunks: z.array(chunkRefSchema),
})
export type IndexStream = z.infer<typeof indexStreamSchema>

export const snapshotIndexSchema = z.object({
  kluis: z.literal('snapshot-index'),
  version: z.literal(FORMAT_VERSION),
  id: snapshotId,
  repository: z.string(),
  time: z.string(),
  host: z.string(),
  writer: z.string(),
  /** Per key group: the size and SHA-256 of its encrypted manifest object. */
  manifests: z.record(z.string(), z.object({ size: z.number().int().positive(), sha256: hex64 })),
  sources: z.array(
    z.object({
      name: z.string(),
      type: z.string(),
      group: z.string(),
      streams: z.array(indexStreamSchema),
      /** For a git-config source: the commit of the backups repository this snapshot is. */
      commit: z
        .string()
        .regex(/^[0-9a-f]{40}$/)
        .optional(),
    }),
  ),
})
export type SnapshotIndex = z.infer<typeof snapshotIndexSchema>

export const manifestSchema = z.object({
  kluis: z.literal('snapshot-manifest'),
  version: z.literal(FORMAT_VERSION),
  snapshot: snapshotId,
  group: z.string(),
  /**
   * The group's dedup key (base64), so that every reader of the snapshot can check chunk ids,
   * including readers added after keys/<group>.pgp was written.
   */
  dedupKey: z.string().regex(/^[A-Za-z0-9+/]{43}=$/),
  sources: z.array(
    z.object({
      name: z.string(),
      type: z.string(),
      facts: z.record(z.string(), z.unknown()),
      streams: z.array(
        z.object({ name: z.string(), size: z.number().int().nonnegative(), sha256: hex64 }),
      ),
    }),
  ),
})
export type SnapshotManifest = z.infer<typeof manifestSchema>
export type ManifestSource = SnapshotManifest['sources'][number]
