import { ConfigError } from '../core/errors.js'

/** s3://BUCKET or s3://BUCKET/PREFIX; the prefix is returned as '' or 'PREFIX/'. */
export function parseS3Url(url: string): { bucket: string; prefix: string } {
  const hint = 'write the repository as s3://BUCKET or s3://BUCKET/PREFIX'
  if (/^s3:\/\/[^@]*:[^@]*@/i.test(url)) {
    // Never echo it: the part before '@' holds a secret.
    throw new ConfigError(
      'the s3:// repository URL must not contain credentials',
      'remove them: credentials come from the AWS default chain (environment, profile, OIDC)',
    )
  }
  const match = /^s3:\/\/([^/?#]*)([^?#]*)$/i.exec(url)
  if (!match) throw new ConfigError('the s3:// repository URL has a query or fragment', hint)
  const [, authority = '', path = ''] = match
  if (!/^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$/.test(authority)) {
    throw new ConfigError(
      `'${authority}' in ${url} is not a valid bucket name`,
      `${hint}; bucket names have 3 to 63 lowercase letters, digits, dots and hyphens`,
    )
  }
  let decoded: string
  try {
    decoded = decodeURIComponent(path)
  } catch {
    throw new ConfigError(`the prefix in ${url} is not valid percent-encoding`, hint)
  }
  const trimmed = decoded.replace(/^\/+/, '').replace(/\/+$/, '')
  const parts = trimmed ? trimmed.split('/') : []
  if (parts.some((part) => part === '' || part === '.' || part === '..')) {
    throw new ConfigError(
      `the prefix in ${url} has an empty, '.' or '..' part`,
      `${hint}, e.g. s3://my-bucket/backups/app`,
    )
  }
  return { bucket: authority, prefix: parts.length ? `${parts.join('/')}/` : '' }
}

/** The endpoint's host and port, never any user name or password written into it. */
export function endpointHost(endpoint: string): string {
  try {
    return new URL(endpoint).host
  } catch {
    return 'a custom endpoint'
  }
}
