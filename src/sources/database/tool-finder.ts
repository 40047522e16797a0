import { execFile } from 'node:child_process'
import { access, constants, readdir, realpath } from 'node:fs/promises'
import { delimiter, join } from 'node:path'
import { promisify } from 'node:util'

/** An installed client tool and the version it reports. */
export interface InstalledTool {
  path: string
  /** The version as printed, e.g. "15.18". */
  version: string
  major: number
}

export interface ToolSearch {
  /** Executable names, in order of preference (e.g. mariadb-dump before mysqldump). */
  names: string[]
  /**
   * Where to look when `override` is unset: PATH first, then these folders; a `*` in one
   * segment matches any entry there (`/usr/lib/postgresql/*\/bin`).
   */
  usualDirectories: string[]
  /** A variable naming the only folder to search, for tools kept somewhere unusual. */
  overrideVariable: string
  /** Finds the version in the tool's `--version` output. */
  versionPattern: RegExp
}

/**
 * Every installed copy of a tool with its version, best first: by name preference, then in
 * search order. Copies reached by several paths (symlinks) are listed once.
 */
export async function installedTools(
  search: ToolSearch,
  env: NodeJS.ProcessEnv,
): Promise<InstalledTool[]> {
  const override = env[search.overrideVariable]
  const directories = override
    ? [override]
    : [
        ...(env.PATH ?? '').split(delimiter).filter(Boolean),
        ...(await expandAll(search.usualDirectories)),
      ]
  const seen = new Set<string>()
  const found: InstalledTool[] = []
  for (const name of search.names) {
    for (const directory of directories) {
      const path = join(directory, name)
      if (!(await isExecutable(path))) continue
      const real = await realpath(path).catch(() => path)
      if (seen.has(real)) continue
      seen.add(real)
      const version = await reportedVersion(path, search.versionPattern)
      if (version) found.push({ path, ...version })
    }
  }
  return found
}

const versions = new Map<string, Promise<{ version: string; major: number } | undefined>>()

function reportedVersion(
  path: string,
  pattern: RegExp,
): Promise<{ version: string; major: number } | undefined> {
  const key = `${path}\0${pattern.source}`
  let known = versions.get(key)
  if (!known) {
    known = promisify(execFile)(path, ['--version'], { timeout: 10_000 }).then(
      ({ stdout }) => {
        const match = pattern.exec(stdout)
        return match?.[1] ? { version: match[1], major: Number.parseInt(match[1], 10) } : undefined
      },
      () => undefined,
    )
    versions.set(key, known)
  }
  return known
}

async function isExecutable(path: string): Promise<boolean> {
  return access(path, constants.X_OK).then(
    () => true,
    () => false,
  )
}

async function expandAll(patterns: string[]): Promise<string[]> {
  const result: string[] = []
  for (const pattern of patterns) result.push(...(await expand(pattern)))
  return result
}

/** Expands one `*` segment, newest version first (entries sorted by number, descending). */
async function expand(pattern: string): Promise<string[]> {
  const star = pattern.indexOf('*')
  if (star < 0) return [pattern]
  const parent = pattern.slice(0, pattern.lastIndexOf('/', star))
  const rest = pattern.slice(parent.length + 1)
  const [segment = '', ...after] = rest.split('/')
  const [prefix = '', suffix = ''] = segment.split('*')
  const entries = await readdir(parent).catch(() => [] as string[])
  return entries
    .filter((entry) => entry.startsWith(prefix) && entry.endsWith(suffix))
    .sort((a, b) => b.localeCompare(a, 'en', { numeric: true }))
    .map((entry) => [parent, entry, ...after].join('/'))
}
