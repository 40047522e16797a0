import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { StorageError } from '../src/core/errors.js'
import { deleteRightsWarning } from '../src/storage/delete-probe.js'
import { LocalStorage } from '../src/storage/local.js'

/** check tells an auditor when the backup credentials could delete the backups. */
describe('the delete-rights probe', () => {
  const roots: string[] = []
  afterAll(async () => {
    for (const root of roots) await rm(root, { recursive: true, force: true })
  })
  async function storage(): Promise<LocalStorage> {
    const root = await mkdtemp(join(tmpdir(), 'kluis-probe-'))
    roots.push(root)
    return new LocalStorage(root)
  }

  it('warns when a probe object can be deleted, and leaves nothing behind', async () => {
    const deletable = await storage()
    const warnings = await deleteRightsWarning(deletable)
    expect(warnings).toEqual([expect.stringContaining('the credentials may delete objects')])
    expect(await readdir(join(deletable.location, 'probes'))).toEqual([])
  })

  it('says nothing when deleting is refused', async () => {
    const locked = await storage()
    locked.delete = async (name) => {
      throw new StorageError(`cannot delete ${name}: access denied`)
    }
    expect(await deleteRightsWarning(locked)).toEqual([])
  })

  it('says nothing when a delete reports success but the object stays (object lock)', async () => {
    const retained = await storage()
    retained.delete = async () => {}
    expect(await deleteRightsWarning(retained)).toEqual([])
  })
})
