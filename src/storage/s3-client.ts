import { S3Client, type S3ClientConfig } from '@aws-sdk/client-s3'
import type { StorageSettings } from './storage.js'

/** The SDK's own retries (exponential backoff with jitter) for 5xx, throttling, resets, timeouts. */
const MAX_ATTEMPTS = 8

/**
 * An S3 client for the `storage:` settings. Credentials come from the AWS SDK's default chain
 * only (environment, shared profile, web identity/OIDC, container and instance roles).
 */
export function createS3Client(settings: StorageSettings, region: string): S3Client {
  const config: S3ClientConfig = {
    region,
    forcePathStyle: settings.pathStyle ?? false,
    maxAttempts: MAX_ATTEMPTS,
    retryMode: 'standard',
    requestHandler: {
      connectionTimeout: 10_000,
      // An idle timeout: a request that makes no progress for this long (a stalled upload)
      // is abandoned, and the SDK retries it. (requestTimeout would cap the total time and,
      // in this SDK, only log a warning unless told to throw.)
      socketTimeout: (settings.timeout ?? 120) * 1000,
    },
  }
  if (settings.endpoint) {
    // S3-compatible services differ in how they take the SDK's default checksums (s3rver
    // stores the aws-chunked framing inside the object), so they get plain payloads and
    // checksums only where an operation requires them. AWS keeps the SDK defaults. Integrity
    // never depends on this: every chunk carries its own HMAC and every index a signature.
    config.endpoint = settings.endpoint
    config.requestChecksumCalculation = 'WHEN_REQUIRED'
    config.responseChecksumValidation = 'WHEN_REQUIRED'
  }
  return new S3Client(config)
}
