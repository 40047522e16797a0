import { AbortMultipartUploadCommand, type S3Client } from '@aws-sdk/client-s3'
import { errorMessage } from '../core/errors.js'
import { onInterrupt } from '../core/interrupt.js'
import type { Reporter } from '../core/reporter.js'
import { createS3Client } from './s3-client.js'
import { isNotFound, s3Failure, scrubber } from './s3-errors.js'
import {
  type MultipartJournal,
  type MultipartUpload,
  unfinishedUploads,
} from './s3-multipart-journal.js'

type Reach = Pick<MultipartUpload, 'endpoint' | 'region' | 'pathStyle'>

/**
 * Keeps track of the multipart uploads `client` starts (lib-storage starts them for large
 * objects) until each is completed or aborted. lib-storage aborts its own upload when a part
 * fails; what it cannot do is abort when the process is interrupted, so an interrupt aborts
 * the open ones here, and `journal` records them for whoever cleans up after a kill.
 */
export function watchMultipartUploads(
  client: S3Client,
  reach: Reach,
  journal: MultipartJournal | undefined,
): void {
  const open = new Map<string, MultipartUpload>()
  let forgetInterrupt: (() => void) | undefined
  const started = (upload: MultipartUpload) => {
    open.set(upload.uploadId, upload)
    journal?.started(upload)
    forgetInterrupt ??= onInterrupt(() => abortAll(client, [...open.values()]))
  }
  const finished = (uploadId: string) => {
    if (!open.delete(uploadId)) return
    journal?.finished(uploadId)
    if (open.size === 0) {
      forgetInterrupt?.()
      forgetInterrupt = undefined
    }
  }
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const input = args.input as { Bucket?: string; Key?: string; UploadId?: string }
      switch (context.commandName) {
        case 'CreateMultipartUploadCommand': {
          const result = await next(args)
          const { UploadId } = result.output as { UploadId?: string }
          if (UploadId && input.Bucket && input.Key) {
            started({ bucket: input.Bucket, key: input.Key, uploadId: UploadId, ...reach })
          }
          return result
        }
        case 'CompleteMultipartUploadCommand':
        case 'AbortMultipartUploadCommand': {
          try {
            const result = await next(args)
            if (input.UploadId) finished(input.UploadId)
            return result
          } catch (error) {
            // NoSuchUpload: it was completed or aborted already.
            if (input.UploadId && isNotFound(s3Failure(error))) finished(input.UploadId)
            throw error
          }
        }
        default:
          return next(args)
      }
    },
    { step: 'initialize', name: 'kluisMultipartUploads' },
  )
}

/** Aborts one upload; 'gone' when it was completed or aborted already. */
async function abortUpload(client: S3Client, upload: MultipartUpload): Promise<'aborted' | 'gone'> {
  try {
    await client.send(
      new AbortMultipartUploadCommand({
        Bucket: upload.bucket,
        Key: upload.key,
        UploadId: upload.uploadId,
      }),
    )
    return 'aborted'
  } catch (error) {
    if (isNotFound(s3Failure(error))) return 'gone'
    throw error
  }
}

async function abortAll(client: S3Client, uploads: MultipartUpload[]): Promise<void> {
  await Promise.all(uploads.map((upload) => abortUpload(client, upload).catch(() => undefined)))
}

/**
 * After a run that may have been killed: aborts every upload the journal at `path` lists as
 * unfinished, each through a client that reaches its bucket the way the run did. A failure is
 * a warning (the parts stay until a lifecycle rule removes them), never an error.
 */
export async function abortUnfinishedUploads(
  path: string,
  reporter: Reporter,
  env: NodeJS.ProcessEnv = process.env,
): Promise<void> {
  const scrub = scrubber(
    [env.AWS_SECRET_ACCESS_KEY, env.AWS_SESSION_TOKEN].filter((s): s is string => !!s),
  )
  const clients = new Map<string, S3Client>()
  const clientFor = (upload: MultipartUpload) => {
    const reach = JSON.stringify([upload.endpoint, upload.region, upload.pathStyle])
    let client = clients.get(reach)
    if (!client) {
      client = createS3Client(
        { endpoint: upload.endpoint, pathStyle: upload.pathStyle, timeout: 30 },
        upload.region,
      )
      clients.set(reach, client)
    }
    return client
  }
  await Promise.all(
    unfinishedUploads(path).map(async (upload) => {
      const object = `s3://${upload.bucket}/${upload.key}`
      try {
        if ((await abortUpload(clientFor(upload), upload)) === 'aborted') {
          reporter.info(`aborted the unfinished multipart upload of ${object}`)
        }
      } catch (error) {
        reporter.warn(
          `could not abort the unfinished multipart upload of ${object} (upload id ${upload.uploadId}): ${scrub(errorMessage(error))}\n` +
            'hint: its parts stay in the bucket, and are billed, until removed: add a lifecycle rule that aborts incomplete multipart uploads after a day',
        )
      }
    }),
  )
  for (const client of clients.values()) client.destroy()
}
