/**
 * Exclude patterns for the files source, gitignore-like:
 * - a pattern without '/' matches the basename at any depth (`*.tmp`, `node_modules`);
 * - a pattern with '/' matches the whole path from the root (a leading '/' is optional);
 * - `*` and `?` do not cross '/', `**` does (`a/**\/b` also matches `a/b`), `[abc]` and `[!a-z]`
 *   match one character, `\` makes the next character literal;
 * - a trailing '/' matches directories only;
 * - excluding a directory excludes everything below it.
 * Negation (`!pattern`) is not supported.
 */
import { ConfigError, errorMessage } from '../../core/errors.js'

interface Rule {
  regex: RegExp
  /** Match the whole relative path rather than the basename. */
  anchored: boolean
  directoriesOnly: boolean
}

export type ExcludeMatcher = (relativePath: string, isDirectory: boolean) => boolean

export function compileExcludes(patterns: string[]): ExcludeMatcher {
  const rules = patterns.filter((p) => p.trim() !== '').map(compileRule)
  if (rules.length === 0) return () => false
  return (relativePath, isDirectory) => {
    const parts = relativePath.split('/')
    // Check each ancestor (as a directory) and then the path itself.
    for (let depth = 1; depth <= parts.length; depth++) {
      const last = depth === parts.length
      const path = last ? relativePath : parts.slice(0, depth).join('/')
      const basename = parts[depth - 1] ?? ''
      for (const rule of rules) {
        if (rule.directoriesOnly && !(last ? isDirectory : true)) continue
        if (rule.regex.test(rule.anchored ? path : basename)) return true
      }
    }
    return false
  }
}

function compileRule(pattern: string): Rule {
  if (pattern.startsWith('!')) {
    throw new ConfigError(
      `exclude pattern "${pattern}": negation is not supported`,
      'list only what to exclude; write \\! for a name that starts with "!"',
    )
  }
  let glob = pattern
  const directoriesOnly = glob.endsWith('/')
  glob = glob.replace(/\/+$/, '')
  const anchored = glob.includes('/')
  glob = glob.replace(/^\/+/, '')
  if (glob === '') throw new ConfigError(`exclude pattern "${pattern}" matches nothing`)
  try {
    return { regex: globToRegExp(glob), anchored, directoriesOnly }
  } catch (error) {
    // e.g. a reversed range such as [z-a]
    throw new ConfigError(`exclude pattern "${pattern}" is invalid: ${errorMessage(error)}`)
  }
}

function globToRegExp(glob: string): RegExp {
  let source = ''
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i] as string
    if (c === '*') {
      const double = glob[i + 1] === '*'
      const wholeComponent =
        double && (i === 0 || glob[i - 1] === '/') && (i + 2 === glob.length || glob[i + 2] === '/')
      if (!wholeComponent) {
        source += '[^/]*'
        if (double) i++
      } else if (glob[i + 2] === '/') {
        source += '(?:.*/)?' // '**/' also matches zero directories
        i += 2
      } else {
        source += '.*'
        i++
      }
    } else if (c === '?') {
      source += '[^/]'
    } else if (c === '[') {
      const end = bracketEnd(glob, i)
      if (end === -1) {
        source += '\\['
      } else {
        source += bracketToRegExp(glob.slice(i + 1, end))
        i = end
      }
    } else if (c === '\\' && i + 1 < glob.length) {
      i++
      source += escapeRegExp(glob[i] as string)
    } else {
      source += escapeRegExp(c)
    }
  }
  return new RegExp(`^${source}$`, 'u')
}

/** Index of the ']' closing the bracket expression opened at `start`, or -1. */
function bracketEnd(glob: string, start: number): number {
  let i = start + 1
  if (glob[i] === '!' || glob[i] === '^') i++
  if (glob[i] === ']') i++ // a leading ']' is a literal member
  return glob.indexOf(']', i)
}

function bracketToRegExp(body: string): string {
  let negate = false
  let rest = body
  if (rest.startsWith('!') || rest.startsWith('^')) {
    negate = true
    rest = rest.slice(1)
  }
  const members = [...rest].map((ch) => (ch === '-' ? '-' : ch.replace(/[\\\][^]/, '\\$&')))
  // Like fnmatch with FNM_PATHNAME, a bracket expression never matches '/'.
  return `(?!/)[${negate ? '^' : ''}${members.join('')}]`
}

function escapeRegExp(c: string): string {
  return c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')
}
