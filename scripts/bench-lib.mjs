// What the benchmark scripts (bench.mjs, bench-databases.mjs) share: running a timed command
// with its peak RSS and CPU time, GNU time's output, CPU profiles, and number formatting.
import { spawn, spawnSync } from 'node:child_process'
import { lstatSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'

const MiB = 1024 * 1024

/** GNU time reports the exact peak RSS (ru_maxrss) and CPU times of what it runs; else poll /proc. */
export function findGnuTime(disabled) {
  if (disabled) return undefined
  const version = Object.values(spawnSync('/usr/bin/time', ['--version'], { encoding: 'utf8' }))
    .filter((v) => typeof v === 'string')
    .join('')
  return /GNU/.test(version) ? '/usr/bin/time' : undefined
}

/** GNU time output: peak RSS in KiB, user and system CPU seconds. */
export const TIME_FORMAT = '%M %U %S'

export function readTimeFile(file) {
  const [kib, user, system] = readFileSync(file, 'utf8').trim().split('\n').pop().split(' ')
  return { peakRss: Number(kib) * 1024, cpuSeconds: Number(user) + Number(system) }
}

/**
 * Runs a command; resolves with wall seconds, peak RSS (bytes), CPU seconds (with GNU time) and
 * its output. Peak RSS: GNU time's ru_maxrss when available (written to `timeFile`), else VmHWM
 * polled every 50 ms (a high-water mark, so only a peak in the last 50 ms could be missed).
 * A non-zero exit rejects with `failure(message)`.
 */
export function measureProcess(command, commandArgs, options) {
  const { cwd, env, pollRss, gnuTime, timeFile, failure, onChild } = options
  const wrapped = pollRss && gnuTime
  const [file, argv] = wrapped
    ? [gnuTime, ['-f', TIME_FORMAT, '-o', timeFile, command, ...commandArgs]]
    : [command, commandArgs]
  return new Promise((resolvePromise, reject) => {
    const started = performance.now()
    const child = spawn(file, argv, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] })
    onChild?.(child)
    const stdout = []
    const stderr = []
    child.stdout.on('data', (piece) => stdout.push(piece))
    child.stderr.on('data', (piece) => stderr.push(piece))
    let polled = 0
    const poll = () => {
      try {
        const status = readFileSync(`/proc/${child.pid}/status`, 'utf8')
        const kb = Number(/^VmHWM:\s+(\d+)\s+kB/m.exec(status)?.[1] ?? 0)
        polled = Math.max(polled, kb * 1024)
      } catch {
        // exited between polls
      }
    }
    const timer = pollRss && !wrapped ? setInterval(poll, 50) : undefined
    child.on('error', (error) => {
      clearInterval(timer)
      reject(error)
    })
    child.on('exit', (code, signal) => {
      const seconds = (performance.now() - started) / 1000
      clearInterval(timer)
      child.on('close', () => {
        const text = Buffer.concat(stdout).toString('utf8')
        const errors = Buffer.concat(stderr).toString('utf8')
        if (code !== 0) {
          reject(
            failure(
              `${[command, ...commandArgs].join(' ')} exited with ${code ?? signal}\n${errors.trim().slice(-4000)}`,
            ),
          )
          return
        }
        const stats = wrapped
          ? readTimeFile(timeFile)
          : { peakRss: pollRss ? polled : undefined, cpuSeconds: undefined }
        resolvePromise({ seconds, ...stats, stdout: text, stderr: errors })
      })
    })
    // The child is a zombie until 'exit' is handled: a poll right before exit still reads it.
    if (timer) child.once('spawn', poll)
  })
}

/** Summarizes V8 .cpuprofile files: self time by function, per thread. */
export function printProfiles(directory, out) {
  for (const phase of readdirSync(directory).sort()) {
    const phaseDir = join(directory, phase)
    if (!lstatSync(phaseDir).isDirectory()) continue
    for (const name of readdirSync(phaseDir)
      .filter((n) => n.endsWith('.cpuprofile'))
      .sort()) {
      const profile = JSON.parse(readFileSync(join(phaseDir, name), 'utf8'))
      const byId = new Map(profile.nodes.map((node) => [node.id, node]))
      const self = new Map()
      let totalUs = 0
      for (let i = 0; i < profile.samples.length; i++) {
        const node = byId.get(profile.samples[i])
        const delta = profile.timeDeltas[i] ?? 0
        totalUs += delta
        const frame = node.callFrame
        const file = frame.url ? frame.url.split('/').pop() : ''
        const key = `${frame.functionName || '(anonymous)'} ${file}${file ? `:${frame.lineNumber + 1}` : ''}`
        self.set(key, (self.get(key) ?? 0) + delta)
      }
      out(`\ncpu profile ${phase}/${name}: ${(totalUs / 1e6).toFixed(2)} s sampled, self time:`)
      for (const [key, us] of [...self].sort((a, b) => b[1] - a[1]).slice(0, 15)) {
        out(
          `  ${(us / 1e6).toFixed(2).padStart(7)} s  ${((100 * us) / totalUs).toFixed(1).padStart(5)} %  ${key}`,
        )
      }
    }
  }
  out(`profiles kept in ${directory} (open them in Chrome DevTools or speedscope)`)
}

/** A string as one single-quoted shell word. */
export function sh(text) {
  return `'${text.replaceAll("'", "'\\''")}'`
}

export function readFileSyncSafe(file) {
  try {
    return readFileSync(file, 'utf8')
  } catch {
    return ''
  }
}

export function formatBytes(bytes) {
  if (bytes >= 1024 ** 3) return `${(bytes / 1024 ** 3).toFixed(2)} GiB`
  if (bytes >= MiB) return `${(bytes / MiB).toFixed(1)} MiB`
  if (bytes >= 1024) return `${(bytes / 1024).toFixed(1)} KiB`
  return `${bytes} B`
}

export function round(value, digits) {
  const factor = 10 ** digits
  return Math.round(value * factor) / factor
}
