import { mkdtempSync, rmSync } from 'node:fs'
import { rm } from 'node:fs/promises'

/**
 * Temporary files and staging folders to remove when the process is interrupted (Ctrl-C, a
 * cancelled workflow). `finally` blocks do not run when a signal ends the process, so the entry
 * points call `cleanUpAfterInterrupt()` from their signal handlers.
 */
const temporaryPaths = new Set<string>()

/** Work to finish on interrupt that needs I/O (releasing a repository lock), given a few seconds. */
const asyncCleanups = new Set<() => Promise<void>>()

/** Runs `cleanup` on interrupt until the returned function is called. */
export function onInterrupt(cleanup: () => Promise<void>): () => void {
  asyncCleanups.add(cleanup)
  return () => asyncCleanups.delete(cleanup)
}

/** How long an interrupted kluis waits for its async cleanups (a lock release) before exiting. */
const ASYNC_CLEANUP_MS = 5000

/** Child processes (dump and restore tools) to stop on interrupt, so none outlives kluis. */
const childProcesses = new Set<{ kill(signal: NodeJS.Signals): boolean }>()

/** Tracks a child until `untrack` is called; on interrupt it is killed. */
export function trackChildProcess(child: { kill(signal: NodeJS.Signals): boolean }): () => void {
  childProcesses.add(child)
  return () => childProcesses.delete(child)
}

export interface TemporaryDirectory {
  path: string
  remove(): Promise<void>
}

/**
 * A new directory `prefix` + random suffix that is removed on interrupt, or by `remove()`.
 * Created synchronously: a signal can never fall between its creation and its registration.
 */
export function temporaryDirectory(prefix: string): TemporaryDirectory {
  const path = mkdtempSync(prefix)
  temporaryPaths.add(path)
  return {
    path,
    async remove() {
      await rm(path, { recursive: true, force: true })
      temporaryPaths.delete(path)
    },
  }
}

export function cleanUpAfterInterrupt(): void {
  // A restore tool killed mid-way rolls its transaction back; a dump tool stops writing.
  for (const child of childProcesses) child.kill('SIGKILL')
  childProcesses.clear()
  for (const path of temporaryPaths) {
    try {
      // Work still running in other threads (a database copy) may add files meanwhile: retry.
      rmSync(path, { recursive: true, force: true, maxRetries: 5, retryDelay: 20 })
    } catch {
      // Exiting with the signal's code matters more than a leftover temporary file.
    }
  }
  temporaryPaths.clear()
}

/**
 * On SIGINT or SIGTERM: remove what was registered, say so, and exit with the code shells use
 * for that signal (130, 143). Entry points call this once.
 */
export function exitCleanlyOnSignals(say: (message: string) => void): void {
  for (const [signal, code] of [
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const) {
    process.once(signal, () => {
      cleanUpAfterInterrupt()
      const pending = [...asyncCleanups].map((cleanup) => cleanup().catch(() => undefined))
      asyncCleanups.clear()
      const timeout = new Promise((resolve) => setTimeout(resolve, ASYNC_CLEANUP_MS).unref())
      void Promise.race([Promise.all(pending), timeout]).then(() => {
        say(
          `kluis: interrupted by ${signal}; temporary files were removed (an unfinished backup leaves no snapshot)`,
        )
        process.exit(code)
      })
    })
  }
}
