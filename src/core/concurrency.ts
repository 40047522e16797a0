/**
 * Runs async tasks with at most `limit` in flight. The first failure is kept and rethrown by
 * `drain()`; tasks started after a failure are refused, so a failed backup stops quickly.
 */
export class TaskPool {
  private readonly running = new Set<Promise<void>>()
  private failure: { error: unknown } | undefined

  constructor(private readonly limit: number) {}

  /** Waits for a free slot, then starts `task`. Throws the first failure of earlier tasks. */
  async run(task: () => Promise<void>): Promise<void> {
    while (this.running.size >= this.limit) await Promise.race(this.running)
    this.throwIfFailed()
    const promise: Promise<void> = task()
      .catch((error: unknown) => {
        this.failure ??= { error }
      })
      .finally(() => this.running.delete(promise))
    this.running.add(promise)
  }

  /** Waits for every task; throws the first failure. */
  async drain(): Promise<void> {
    while (this.running.size > 0) await Promise.race(this.running)
    this.throwIfFailed()
  }

  private throwIfFailed(): void {
    if (this.failure) throw this.failure.error
  }
}

/**
 * Maps items through `fn` with up to `limit` calls in flight and yields results in the
 * original order: read-ahead for restores. Stops starting new calls once one failed.
 */
export async function* mapOrdered<T, R>(
  items: Iterable<T>,
  limit: number,
  fn: (item: T) => Promise<R>,
): AsyncGenerator<R> {
  const queue: Promise<R>[] = []
  const iterator = items[Symbol.iterator]()
  const fill = () => {
    while (queue.length < limit) {
      const next = iterator.next()
      if (next.done) return
      const promise = fn(next.value)
      promise.catch(() => {}) // observed when its turn comes; avoid an unhandled rejection meanwhile
      queue.push(promise)
    }
  }
  fill()
  while (queue.length > 0) {
    const result = await (queue.shift() as Promise<R>)
    fill()
    yield result
  }
}
