import { appendFileSync, readFileSync } from 'node:fs'

/** One S3 multipart upload: enough to abort it from another process. Holds no credentials. */
export interface MultipartUpload {
  bucket: string
  key: string
  uploadId: string
  /** How the client reached the bucket (storage.endpoint, region, path-style). */
  endpoint?: string
  region: string
  pathStyle: boolean
}

type JournalLine = { started: MultipartUpload } | { finished: string }

/**
 * An append-only file of the multipart uploads one run started and finished. A process killed
 * outright (a cancelled job after its grace period) cannot abort its own uploads, and S3 keeps
 * their parts, and bills them, until someone does. Whoever cleans up after the run (the
 * action's post step) aborts what this file lists as unfinished, and nothing else: another
 * job's uploads in the same bucket are never touched. Lines are written synchronously, so a
 * kill loses at most the upload whose creation was still in flight.
 */
export class MultipartJournal {
  constructor(readonly path: string) {}

  started(upload: MultipartUpload): void {
    this.append({ started: upload })
  }

  finished(uploadId: string): void {
    this.append({ finished: uploadId })
  }

  private append(line: JournalLine): void {
    appendFileSync(this.path, `${JSON.stringify(line)}\n`, { mode: 0o600 })
  }
}

/** The uploads the journal at `path` lists as started and not finished; none when it is absent. */
export function unfinishedUploads(path: string): MultipartUpload[] {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return []
    throw error
  }
  const open = new Map<string, MultipartUpload>()
  for (const line of text.split('\n')) {
    let entry: Partial<JournalLine>
    try {
      entry = JSON.parse(line) as Partial<JournalLine>
    } catch {
      continue // an empty line, or the last one torn by a kill
    }
    if (typeof entry !== 'object' || entry === null) continue
    if ('started' in entry && entry.started) open.set(entry.started.uploadId, entry.started)
    if ('finished' in entry && typeof entry.finished === 'string') open.delete(entry.finished)
  }
  return [...open.values()]
}
