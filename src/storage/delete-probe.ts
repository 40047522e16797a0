import { randomBytes } from 'node:crypto'
import type { StorageBackend } from './storage.js'

/**
 * Whether these credentials may delete objects, found by trying it on a probe object: a CI key
 * that can delete lets whoever steals it remove the backups. Asking the service what a key may
 * do needs IAM rights of its own; trying is the one answer every service gives. A probe that
 * cannot be deleted stays behind: a few bytes under probes/ (not locks/, where it would look
 * like a broken lock to every backup).
 */
export async function deleteRightsWarning(storage: StorageBackend): Promise<string[]> {
  const probe = `probes/delete-${randomBytes(8).toString('hex')}`
  try {
    await storage.putIfAbsent(probe, Buffer.from('kluis check: may these credentials delete?\n'))
  } catch {
    return [] // a read-only key cannot delete either (or writing fails, which backup reports)
  }
  try {
    await storage.delete(probe)
  } catch {
    return []
  }
  if ((await storage.stat(probe).catch(() => ({ size: 0 }))) !== undefined) return []
  return [
    `the credentials may delete objects in ${storage.location}: a stolen CI key could remove the backups; back up with a key that lacks delete rights, or enable object lock`,
  ]
}
