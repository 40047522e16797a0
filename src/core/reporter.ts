/**
 * How core code tells the user what is happening. The CLI writes to stderr, the action uses
 * @actions/core; core code knows neither.
 */
export interface Reporter {
  info(message: string): void
  warn(message: string): void
  /** Debug detail, shown only when asked for. */
  debug(message: string): void
}

/** A reporter that keeps what it is told; used by tests and by callers that summarise. */
export class MemoryReporter implements Reporter {
  readonly infos: string[] = []
  readonly warnings: string[] = []
  readonly debugs: string[] = []
  info(message: string): void {
    this.infos.push(message)
  }
  warn(message: string): void {
    this.warnings.push(message)
  }
  debug(message: string): void {
    this.debugs.push(message)
  }
}

export const silentReporter: Reporter = { info() {}, warn() {}, debug() {} }
