import type { KluisConfig } from '../config/config.js'
import { loadReaderKeys, loadWriterKey } from '../config/key-material.js'
import { RefusedError } from '../core/errors.js'
import type { Reporter } from '../core/reporter.js'
import { Repository } from '../repository/repository.js'
import { openConfiguredStorage } from './common.js'

export interface InitResult {
  repository: string
  created: boolean
  groupsCreated: string[]
}

/**
 * Creates the repository and one dedup key per key group. On an existing repository it only
 * adds the keys of groups that are new in the configuration, so it is safe to run again.
 */
export async function init(
  config: KluisConfig,
  reporter: Reporter,
  env: NodeJS.ProcessEnv,
): Promise<InitResult> {
  const writer = await loadWriterKey(config, env)
  const groups = new Map<string, Awaited<ReturnType<typeof loadReaderKeys>>>()
  for (const group of config.keys.readers.keys())
    groups.set(group, await loadReaderKeys(config, group))
  const storage = await openConfiguredStorage(config, env)
  if ((await storage.create()) === 'created') {
    reporter.info(`created ${storage.location}`)
  }
  let repository: Repository
  let created = true
  try {
    repository = await Repository.init(storage)
  } catch (error) {
    if (!(error instanceof RefusedError)) throw error
    repository = await Repository.open(storage)
    created = false
  }
  const groupsCreated: string[] = []
  for (const [group, readers] of groups) {
    if (await repository.createDedupKey(group, readers, writer)) groupsCreated.push(group)
  }
  if (!created) {
    reporter.info(
      `repository at ${storage.location} already exists${groupsCreated.length ? `; added key group(s) ${groupsCreated.join(', ')}` : ''}`,
    )
  }
  return { repository: storage.location, created, groupsCreated }
}
