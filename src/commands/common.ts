import { tmpdir } from 'node:os'
import { type KluisConfig, resolvePath, type SourceConfig } from '../config/config.js'
import { ConfigError } from '../core/errors.js'
import type { Reporter } from '../core/reporter.js'
import { Repository } from '../repository/repository.js'
import type { SourceContext } from '../sources/source.js'
import { openStorage } from '../storage/open.js'
import type { StorageBackend } from '../storage/storage.js'

export async function openRepository(
  config: KluisConfig,
  env: NodeJS.ProcessEnv,
): Promise<Repository> {
  return Repository.open(await openConfiguredStorage(config, env))
}

/** The storage backend the configuration names, with its `storage:` settings. */
export function openConfiguredStorage(
  config: KluisConfig,
  env: NodeJS.ProcessEnv,
): Promise<StorageBackend> {
  return openStorage(config.repository, config.baseDirectory, config.storage, env)
}

/** The configured sources named by --source (all when none are named). */
export function selectSources(
  sources: SourceConfig[],
  names: string[] | undefined,
): SourceConfig[] {
  if (!names || names.length === 0) return sources
  const unknown = names.filter((name) => !sources.some((source) => source.name === name))
  if (unknown.length > 0) {
    throw new ConfigError(
      `no source named ${unknown.map((n) => `'${n}'`).join(', ')} in the configuration`,
      `configured sources: ${sources.map((s) => s.name).join(', ')}`,
    )
  }
  return sources.filter((source) => names.includes(source.name))
}

/** What sources need from the run: where to report, temporary files, the config's folder. */
export function sourceContext(
  config: KluisConfig,
  reporter: Reporter,
  env: NodeJS.ProcessEnv,
): SourceContext {
  return {
    reporter,
    temporaryDirectory: env.KLUIS_TMPDIR || tmpdir(),
    resolvePath: (path) => resolvePath(config, path),
    env,
  }
}
