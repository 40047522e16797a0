import type { KluisConfig } from '../config/config.js'
import { loadWriterPublicKey } from '../config/key-material.js'
import type { Reporter } from '../core/reporter.js'
import type { SnapshotIndex } from '../repository/format.js'
import { openRepository } from './common.js'

export interface SnapshotSummary {
  id: string
  time: string
  host: string
  sources: Array<{ name: string; type: string; size: number }>
  size: number
}

/** Every snapshot whose index the trusted writer signed, oldest first. */
export async function listSnapshots(
  config: KluisConfig,
  reporter: Reporter,
  env: NodeJS.ProcessEnv,
): Promise<SnapshotSummary[]> {
  const writer = await loadWriterPublicKey(config)
  const repository = await openRepository(config, env)
  const snapshots = await repository.listSnapshots(writer, reporter)
  return snapshots.map(summarize)
}

export function summarize(index: SnapshotIndex): SnapshotSummary {
  const sources = index.sources.map((source) => ({
    name: source.name,
    type: source.type,
    size: source.streams.reduce((sum, stream) => sum + stream.size, 0),
  }))
  return {
    id: index.id,
    time: index.time,
    host: index.host,
    sources,
    size: sources.reduce((sum, source) => sum + source.size, 0),
  }
}
