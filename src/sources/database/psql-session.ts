import { type ChildProcess, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { SourceError } from '../../core/errors.js'
import { trackChildProcess } from '../../core/interrupt.js'
import type { ToolCommand } from './tool-process.js'

/** psql options for machine-read output: no psqlrc, unaligned, tuples only, stop on error. */
export const PSQL_SCRIPT_OPTIONS = ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1']

/**
 * One psql process kept open across queries: the transaction that exports a snapshot must stay
 * open while pg_dump imports it, and row counts are taken in that same transaction. psql is
 * used rather than a driver library because it reads the URL, TLS settings and .pgpass exactly
 * as pg_dump does.
 *
 * Every query returns one jsonb value on one line (jsonb's text never spans lines); a marker
 * echoed after it tells where the answer ends. psql exits on the first error (ON_ERROR_STOP),
 * which ends the output and fails the waiting query with psql's stderr.
 */
export class PsqlSession {
  private readonly child: ChildProcess
  private readonly untrack: () => void
  private output = ''
  private stderr = ''
  private closed = false
  /** How psql ended ("exited with code 2"), once it has. */
  private ending = ''
  private waiting:
    | { marker: string; resolve(text: string): void; reject(e: Error): void }
    | undefined
  private queue: Promise<unknown> = Promise.resolve()

  constructor(private readonly command: ToolCommand) {
    this.child = spawn(command.path, command.args, {
      env: command.env,
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    this.untrack = trackChildProcess(this.child)
    this.child.stdin?.on('error', () => {
      // psql ended; the close handler reports why
    })
    this.child.stdout?.setEncoding('utf8')
    this.child.stdout?.on('data', (text: string) => {
      this.output += text
      this.settle()
    })
    this.child.stderr?.setEncoding('utf8')
    this.child.stderr?.on('data', (text: string) => {
      this.stderr = (this.stderr + text).slice(-16_384)
    })
    this.child.once('error', (error) => this.end(error.message))
    this.child.once('close', (code, signal) =>
      this.end(signal ? `killed by ${signal}` : `exited with code ${code}`),
    )
  }

  /** Runs one statement whose result is a single jsonb value, and parses it. */
  async json<T>(sql: string): Promise<T> {
    const text = await this.run(`SELECT to_jsonb((${sql}))`)
    return JSON.parse(text) as T
  }

  /** Runs statements without a result (BEGIN, SET, …). */
  async execute(sql: string): Promise<void> {
    await this.run(sql)
  }

  /** Ends the session (the open transaction, if any, is rolled back: it only read). */
  async close(): Promise<void> {
    if (this.closed) return
    this.child.stdin?.end()
    await new Promise<void>((resolve) => {
      if (this.closed) resolve()
      else this.child.once('close', () => resolve())
    })
  }

  private run(sql: string): Promise<string> {
    const result = this.queue.then(
      () =>
        new Promise<string>((resolve, reject) => {
          if (this.closed) {
            reject(this.failure(this.ending))
            return
          }
          const marker = `__kluis_${randomBytes(8).toString('hex')}__`
          this.waiting = { marker, resolve, reject }
          this.child.stdin?.write(`${sql};\n\\echo ${marker}\n`)
          this.settle()
        }),
    )
    this.queue = result.catch(() => undefined)
    return result
  }

  private settle(): void {
    const waiting = this.waiting
    if (!waiting) return
    const end = this.output.indexOf(`${waiting.marker}\n`)
    if (end < 0) return
    const answer = this.output.slice(0, end).trim()
    this.output = this.output.slice(end + waiting.marker.length + 1)
    this.waiting = undefined
    waiting.resolve(answer)
  }

  private end(how: string): void {
    if (this.closed) return
    this.closed = true
    this.ending = how
    this.untrack()
    this.waiting?.reject(this.failure(how))
    this.waiting = undefined
  }

  private failure(how: string): SourceError {
    const tail = this.command
      .redact(this.stderr)
      .trim()
      .split('\n')
      .filter((line) => line.trim() !== '')
      .slice(-10)
      .map((line) => `  ${line}`)
      .join('\n')
    return new SourceError(
      `${this.command.label}: psql ${how}${tail ? `:\n${tail}` : ''}`,
      this.command.hint,
    )
  }
}

/** A string as an SQL literal (standard_conforming_strings is on since PostgreSQL 9.1). */
export function sqlLiteral(value: string): string {
  return `'${value.replaceAll("'", "''")}'`
}

/** A name as an SQL identifier. */
export function sqlIdentifier(name: string): string {
  return `"${name.replaceAll('"', '""')}"`
}
