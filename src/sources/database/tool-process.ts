import { type ChildProcess, spawn } from 'node:child_process'
import type { Writable } from 'node:stream'
import { SourceError } from '../../core/errors.js'
import { trackChildProcess } from '../../core/interrupt.js'

/** A database tool to run: never with a secret in `args` (see DatabaseUrl). */
export interface ToolCommand {
  /** Absolute path of the executable. */
  path: string
  args: string[]
  /** The child's whole environment. */
  env: NodeJS.ProcessEnv
  /** Who runs it, for messages: "pg_dump of database app". */
  label: string
  /** Removes secrets from the tool's output before it is shown. */
  redact(text: string): string
  /** What the user can do when the tool fails (shown under its stderr). */
  hint?: string
  /** Receives each line a successful tool printed on stderr (its warnings), secrets removed. */
  warn?(line: string): void
}

/** The hint for a tool that failed to reach or log in to its server. */
export const CONNECTION_HINT =
  'check the URL (host, port, database, user, password) and that the server accepts connections from this machine'

/** Lines of a tool's stderr kept for the error message: the end is where the cause is. */
const STDERR_LINES = 15
const STDERR_BYTES = 64 * 1024

/** The environment for database tools: the caller's, without kluis's own key material. */
export function toolEnvironment(
  env: NodeJS.ProcessEnv,
  extra: Record<string, string | undefined>,
): NodeJS.ProcessEnv {
  const result: NodeJS.ProcessEnv = {}
  for (const [name, value] of Object.entries(env)) {
    if (/^KLUIS_(WRITER|READER)_(KEY|PASSPHRASE)$/.test(name)) continue
    result[name] = value
  }
  for (const [name, value] of Object.entries(extra)) {
    if (value === undefined) delete result[name]
    else result[name] = value
  }
  return result
}

/** A started tool whose stderr is collected and whose end is awaited once. */
class RunningTool {
  readonly child: ChildProcess
  private stderr = ''
  private readonly untrack: () => void
  private readonly exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  private spawnError: Error | undefined

  constructor(
    readonly command: ToolCommand,
    stdin: 'pipe' | 'ignore',
  ) {
    this.child = spawn(command.path, command.args, {
      env: command.env,
      stdio: [stdin, 'pipe', 'pipe'],
    })
    this.untrack = trackChildProcess(this.child)
    this.child.stderr?.setEncoding('utf8')
    this.child.stderr?.on('data', (text: string) => {
      this.stderr = (this.stderr + text).slice(-STDERR_BYTES)
    })
    this.exit = new Promise((resolve) => {
      this.child.once('error', (error) => {
        this.spawnError = error
        resolve({ code: null, signal: null })
      })
      this.child.once('close', (code, signal) => resolve({ code, signal }))
    }).finally(this.untrack) as Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  }

  /** Waits for the end; a failure (exit code, signal, not started) becomes one SourceError. */
  async finished(): Promise<{ stderr: string }> {
    const { code, signal } = await this.exit
    if (this.spawnError) {
      throw new SourceError(
        `${this.command.label}: cannot run ${this.command.path}: ${this.spawnError.message}`,
        'check that the database client tools are installed and executable',
      )
    }
    if (code !== 0) {
      const how = signal ? `was killed by ${signal}` : `exited with code ${code}`
      const tail = this.stderrTail()
      throw new SourceError(
        `${this.command.label} ${how}${tail ? `:\n${tail}` : ' and printed nothing'}`,
        this.command.hint,
      )
    }
    const stderr = this.command.redact(this.stderr)
    if (this.command.warn) {
      for (const line of stderr.split('\n')) if (line.trim()) this.command.warn(line.trim())
    }
    return { stderr }
  }

  /** The last lines of stderr, secrets removed, indented under the message. */
  stderrTail(): string {
    return this.command
      .redact(this.stderr)
      .trimEnd()
      .split('\n')
      .filter((line) => line.trim() !== '')
      .slice(-STDERR_LINES)
      .map((line) => `  ${line}`)
      .join('\n')
  }

  stop(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL')
  }
}

/**
 * A tool's stdout as a stream that ends only after the tool exited successfully. A failure
 * (exit code, signal, spawn error) is thrown from the stream, so a partial dump can never end
 * cleanly; stopping early kills the tool. Back-pressure reaches the tool through the pipe.
 */
export async function* toolOutput(command: ToolCommand): AsyncGenerator<Buffer> {
  const tool = new RunningTool(command, 'ignore')
  let completed = false
  try {
    const stdout = tool.child.stdout
    if (stdout) {
      for await (const piece of stdout) yield piece as Buffer
    }
    await tool.finished()
    completed = true
  } finally {
    if (!completed) {
      tool.stop()
      await tool.finished().catch(() => undefined)
    }
  }
}

/** Runs a tool to its end with `input` on stdin; returns its stdout (text) and stderr. */
export async function runTool(
  command: ToolCommand,
  input = '',
): Promise<{ stdout: string; stderr: string }> {
  const tool = new RunningTool(command, 'pipe')
  let stdout = ''
  tool.child.stdout?.setEncoding('utf8')
  tool.child.stdout?.on('data', (text: string) => {
    stdout += text
  })
  tool.child.stdin?.on('error', () => {
    // The tool exited before reading all input: its exit status tells why.
  })
  tool.child.stdin?.end(input)
  const { stderr } = await tool.finished()
  return { stdout, stderr }
}

/**
 * Feeds a stream into a tool's stdin (a restore). When the stream fails (a chunk that does
 * not verify), the tool is killed before its stdin is closed: a restore tool must never see
 * the end of a stream that was not whole, since it would take it for the end of the dump.
 */
export async function feedTool(
  command: ToolCommand,
  data: AsyncIterable<Buffer>,
): Promise<{ stdout: string; stderr: string }> {
  const tool = new RunningTool(command, 'pipe')
  const stdin = tool.child.stdin
  let stdout = ''
  tool.child.stdout?.setEncoding('utf8')
  tool.child.stdout?.on('data', (text: string) => {
    stdout = (stdout + text).slice(-STDERR_BYTES)
  })
  let toolGone = false
  stdin?.on('error', () => {
    toolGone = true // EPIPE: the tool stopped reading; its exit status says why
  })
  try {
    for await (const piece of data) {
      if (toolGone || !stdin) break
      if (!stdin.write(piece)) await drainedOrClosed(stdin)
    }
  } catch (error) {
    tool.stop()
    await tool.finished().catch(() => undefined)
    throw error
  }
  stdin?.end()
  const { stderr } = await tool.finished()
  if (toolGone) {
    throw new SourceError(`${command.label} stopped reading the dump before its end`)
  }
  return { stdout, stderr }
}

/** Resolves when a pipe can take more, or is gone; leaves no listener behind. */
function drainedOrClosed(stream: Writable): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      stream.off('drain', done)
      stream.off('close', done)
      resolve()
    }
    stream.on('drain', done)
    stream.on('close', done)
  })
}
