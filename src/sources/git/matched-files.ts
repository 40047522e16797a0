import { lstat, readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Reporter } from '../../core/reporter.js'
import { compileExcludes } from '../tar/glob.js'

/** A configuration file to version: its path relative to the base folder, and its bytes. */
export interface MatchedFile {
  path: string
  data: Buffer
  secret: boolean
}

/**
 * The regular files below `base` that match one of `paths` (globs relative to `base`: `*` and
 * `?` stay within a folder, `**` crosses folders, a folder matches everything in it), each
 * marked secret when it matches `secret` (gitignore-style: a pattern without '/' matches a
 * name at any depth). Only the folders a pattern can reach are read. Sorted by path.
 */
export async function matchedFiles(
  base: string,
  paths: string[],
  secret: string[],
  reporter: Reporter,
): Promise<MatchedFile[]> {
  // Anchored at the base: "config/**" and ".env.production" name paths from the base folder.
  const included = compileExcludes(paths.map((p) => `/${p.replace(/^\/+/, '')}`))
  const isSecret = compileExcludes(secret)
  const found = new Map<string, MatchedFile>()
  for (const start of new Set(paths.map(literalPrefix))) {
    await walk(
      base,
      start,
      async (path) => {
        if (found.has(path) || !included(path, false)) return
        found.set(path, {
          path,
          data: await readFile(join(base, path)),
          secret: isSecret(path, false),
        })
      },
      reporter,
    )
  }
  return [...found.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
}

/** The leading folders of a glob that hold no wildcard: where a walk for it starts. */
function literalPrefix(pattern: string): string {
  const clean = pattern.replace(/^\/+/, '').replace(/\/+$/, '')
  if (!/[*?[\\]/.test(clean)) return clean // a file or folder named exactly
  const parts = clean.split('/')
  const literal: string[] = []
  for (const part of parts.slice(0, -1)) {
    if (/[*?[\\]/.test(part)) break
    literal.push(part)
  }
  return literal.join('/')
}

async function walk(
  base: string,
  relative: string,
  visit: (path: string) => Promise<void>,
  reporter: Reporter,
): Promise<void> {
  const info = await lstat(join(base, relative)).catch(() => undefined)
  if (!info) return
  if (info.isSymbolicLink()) {
    reporter.warn(`git-config: ${relative} is a symbolic link; it is not versioned`)
    return
  }
  if (info.isFile()) {
    await visit(relative)
    return
  }
  if (!info.isDirectory()) return
  const entries = await readdir(join(base, relative))
  for (const entry of entries.sort()) {
    if (entry === '.git') continue
    await walk(base, relative ? `${relative}/${entry}` : entry, visit, reporter)
  }
}
