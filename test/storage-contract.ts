import { randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { ObjectNotFoundError, type StorageBackend } from '../src/storage/storage.js'

/**
 * The one contract every storage backend passes (restic's backend test suite is the model).
 * `open` gives a fresh, empty backend for each test.
 */
export function storageContract(name: string, open: () => Promise<StorageBackend>): void {
  describe(`storage contract: ${name}`, () => {
    it('writes an object once and never overwrites it', async () => {
      const storage = await open()
      expect(await storage.putIfAbsent('chunks/ab/ab01', Buffer.from('first'))).toBe(true)
      expect(await storage.putIfAbsent('chunks/ab/ab01', Buffer.from('second'))).toBe(false)
      expect((await storage.get('chunks/ab/ab01')).toString()).toBe('first')
      expect(await storage.stat('chunks/ab/ab01')).toEqual({ size: 5 })
    })

    it('reports a missing object as ObjectNotFoundError and stat undefined', async () => {
      const storage = await open()
      await expect(storage.get('snapshots/nope')).rejects.toBeInstanceOf(ObjectNotFoundError)
      expect(await storage.stat('snapshots/nope')).toBeUndefined()
    })

    it('lists by prefix with sizes, across nested names', async () => {
      const storage = await open()
      await storage.putIfAbsent('chunks/ab/ab01', Buffer.alloc(3))
      await storage.putIfAbsent('chunks/cd/cd02', Buffer.alloc(4))
      await storage.putIfAbsent('snapshots/s1.json.asc', Buffer.alloc(5))
      await storage.putIfAbsent('config.json', Buffer.alloc(6))
      const list = async (prefix: string) => {
        const out: string[] = []
        for await (const object of storage.list(prefix)) out.push(`${object.name}=${object.size}`)
        return out.sort()
      }
      expect(await list('chunks/')).toEqual(['chunks/ab/ab01=3', 'chunks/cd/cd02=4'])
      expect(await list('chunks/ab')).toEqual(['chunks/ab/ab01=3'])
      expect(await list('snapshots/')).toEqual(['snapshots/s1.json.asc=5'])
      expect(await list('')).toHaveLength(4)
      expect(await list('locks/')).toEqual([])
    })

    it('deletes, and deleting a missing object is not an error', async () => {
      const storage = await open()
      await storage.putIfAbsent('locks/l1', Buffer.from('x'))
      await storage.delete('locks/l1')
      await storage.delete('locks/l1')
      expect(await storage.stat('locks/l1')).toBeUndefined()
    })

    it('stores binary data of several MiB unchanged, and concurrent writers of one name agree', async () => {
      const storage = await open()
      const data = Buffer.alloc(5 * 1024 * 1024 + 3, 0xa5)
      const results = await Promise.all(
        [1, 2, 3, 4].map(() => storage.putIfAbsent('chunks/ef/ef03', data)),
      )
      expect(results.filter(Boolean)).toHaveLength(1)
      expect((await storage.get('chunks/ef/ef03')).equals(data)).toBe(true)
    })

    it('stores random bytes of every size around the part boundaries exactly', async () => {
      const storage = await open()
      for (const size of [0, 1, 1024 * 1024 - 1, 8 * 1024 * 1024 + 17]) {
        const data = randomBytes(size)
        expect(await storage.putIfAbsent(`chunks/00/size-${size}`, data)).toBe(true)
        const back = await storage.get(`chunks/00/size-${size}`)
        expect(back.length).toBe(size)
        expect(back.equals(data)).toBe(true)
        expect(await storage.stat(`chunks/00/size-${size}`)).toEqual({ size })
      }
    })

    it('lists more objects than one page holds', async () => {
      const storage = await open()
      const names = Array.from(
        { length: 1100 },
        (_, i) => `chunks/aa/page-${String(i).padStart(4, '0')}`,
      )
      for (let i = 0; i < names.length; i += 50) {
        await Promise.all(
          names.slice(i, i + 50).map((name) => storage.putIfAbsent(name, Buffer.from('p'))),
        )
      }
      let count = 0
      for await (const object of storage.list('chunks/aa/')) {
        expect(object.size).toBe(1)
        count++
      }
      expect(count).toBe(names.length)
    })

    it('creates its container once, and says so', async () => {
      const storage = await open()
      expect(await storage.create()).toBe('exists') // open() gives a usable, existing backend
      expect(storage.concurrency).toBeGreaterThan(0)
      expect(await storage.posture(366)).toEqual(expect.any(Array))
    })
  })
}
