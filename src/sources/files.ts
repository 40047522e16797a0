import { stat } from 'node:fs/promises'
import { z } from 'zod'
import type { SourceConfig } from '../config/config.js'
import { IntegrityError, SourceError } from '../core/errors.js'
import {
  onlyStream,
  parseFacts,
  type RestoreSummary,
  type SourceDriver,
  type SourceReading,
} from './source.js'
import { extractTar } from './tar/reader.js'
import type { TarFact } from './tar/types.js'
import { tarDirectory } from './tar/writer.js'

type FilesConfig = Extract<SourceConfig, { type: 'files' }>

const filesFactsSchema = z.object({
  engine: z.literal('files'),
  root: z.string(),
  files: z.number(),
  bytes: z.number(),
  entries: z.array(
    z.object({
      path: z.string(),
      type: z.enum(['file', 'directory', 'symlink']),
      mode: z.number(),
      mtime: z.number(),
      size: z.number(),
      sha256: z.string().optional(),
      target: z.string().optional(),
      offset: z.number(),
    }),
  ),
})
export type FilesFacts = z.infer<typeof filesFactsSchema>

/**
 * A folder as one POSIX tar stream in sorted path order, so unchanged files give unchanged
 * bytes and deduplicate. The manifest keeps every entry's mode, mtime, size, SHA-256 and
 * offset in the stream.
 */
export const filesDriver: SourceDriver<FilesConfig> = {
  async read(config, context): Promise<SourceReading> {
    const root = context.resolvePath(config.path)
    const info = await stat(root).catch(() => undefined)
    if (!info?.isDirectory()) {
      throw new SourceError(
        `source '${config.name}': folder ${config.path} ${info ? 'is not a directory' : 'does not exist'}`,
        'check `path` of the source (relative to the configuration file)',
      )
    }
    const entries: TarFact[] = []
    const data = tarDirectory(root, {
      exclude: config.exclude,
      facts: entries,
      onWarning: (message) => context.reporter.warn(`source '${config.name}': ${message}`),
    })
    return {
      streams: [{ name: 'tar', data }],
      facts: () => summarize(config.path, entries),
      close: async () => {},
    }
  },

  async restore(streams, directory, facts, context): Promise<RestoreSummary> {
    const stream = onlyStream(streams, 'tar')
    const restored = await extractTar(stream.data, directory, {
      onWarning: (message) => context.reporter.warn(message),
    })
    const expected = parseFacts(filesFactsSchema, facts, 'files').entries
    const byPath = new Map(restored.map((entry) => [entry.path, entry]))
    for (const entry of expected) {
      if (entry.type !== 'file') continue
      const actual = byPath.get(entry.path)
      if (!actual || actual.sha256 !== entry.sha256) {
        throw new IntegrityError(
          entry.path,
          actual
            ? 'restored content differs from the manifest'
            : 'missing from the restored stream',
        )
      }
    }
    const summary = summarize('', restored)
    return { description: `${summary.files} file(s), ${summary.entries.length} entries` }
  },
}

function summarize(root: string, entries: TarFact[]): FilesFacts & Record<string, unknown> {
  const files = entries.filter((entry) => entry.type === 'file')
  return {
    engine: 'files',
    root,
    files: files.length,
    bytes: files.reduce((sum, entry) => sum + entry.size, 0),
    entries,
  }
}
