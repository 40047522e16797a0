import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { LocalStorage } from '../src/storage/local.js'
import { openStorage } from '../src/storage/open.js'
import { storageContract } from './storage-contract.js'

const roots: string[] = []
async function freshRoot(): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'kluis-storage-'))
  roots.push(root)
  return root
}
afterAll(async () => {
  for (const root of roots) await rm(root, { recursive: true, force: true })
})

storageContract('local directory', async () => new LocalStorage(await freshRoot()))

describe('local storage specifics', () => {
  it('leaves no temporary files behind', async () => {
    const root = await freshRoot()
    const storage = new LocalStorage(root)
    await storage.putIfAbsent('chunks/ab/ab01', Buffer.from('x'))
    await storage.putIfAbsent('chunks/ab/ab01', Buffer.from('y'))
    expect(await readdir(join(root, 'chunks', 'ab'))).toEqual(['ab01'])
  })

  it('refuses object names that leave the repository', async () => {
    const storage = new LocalStorage(await freshRoot())
    await expect(storage.get('../etc/passwd')).rejects.toThrow('invalid object name')
  })

  it('opens file:// URLs and plain paths relative to the configuration folder', async () => {
    const location = async (url: string) => (await openStorage(url, '/srv/app')).location
    expect(await location('file://./backup-repo')).toBe('/srv/app/backup-repo')
    expect(await location('file:///var/backups/app')).toBe('/var/backups/app')
    expect(await location('backups')).toBe('/srv/app/backups')
    await expect(openStorage('ftp://host/x', '/srv')).rejects.toThrow(
      "unsupported repository URL scheme 'ftp://'",
    )
  })
})
