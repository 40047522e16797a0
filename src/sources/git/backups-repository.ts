import { mkdir } from 'node:fs/promises'
import { isAbsolute, resolve } from 'node:path'
import { type SimpleGit, simpleGit } from 'simple-git'
import { ConfigError, errorMessage, SourceError } from '../../core/errors.js'
import { redactor } from '../../core/redact.js'

/** Variables for interactive use only: an unattended backup must never wait on them. */
const INTERACTIVE_VARIABLES = [
  'EDITOR',
  'VISUAL',
  'GIT_EDITOR',
  'GIT_SEQUENCE_EDITOR',
  'PAGER',
  'GIT_PAGER',
  'GIT_ASKPASS',
  'SSH_ASKPASS',
  'GIT_EXTERNAL_DIFF',
]

export interface BackupsRepositoryOptions {
  /** The remote as configured: https://, ssh://, user@host:path, file:// or a local path. */
  remote: string
  branch: string
  /** An empty folder for the working clone. */
  workTree: string
  /** For https remotes: sent as an HTTP header through git's environment, never stored. */
  token: string | undefined
  /** Resolves a local-path remote against the configuration's folder. */
  resolvePath(path: string): string
  env: NodeJS.ProcessEnv
  /** Who commits: the snapshot's host and time. */
  author: { name: string; email: string; time: string }
  /** Names the source in messages. */
  where: string
}

/**
 * The git repository configuration is versioned in, through simple-git. The token reaches git
 * only through its environment (GIT_CONFIG_COUNT/KEY/VALUE, git 2.31+), scoped to the remote's
 * origin as actions/checkout scopes its header: never in argv, never in .git/config.
 */
export class BackupsRepository {
  private constructor(
    private readonly git: SimpleGit,
    readonly workTree: string,
    private readonly branch: string,
    private readonly where: string,
    private readonly redact: (text: string) => string,
  ) {}

  static async open(options: BackupsRepositoryOptions): Promise<BackupsRepository> {
    const remote = remoteUrl(options.remote, options.resolvePath, options.where)
    const settings: Array<[string, string]> = [
      ['commit.gpgsign', 'false'], // a user's signing setup must not break an unattended backup
    ]
    if (options.token) {
      // Never in cleartext: a token goes to https remotes only.
      const origin = /^https:\/\//i.test(remote) ? new URL(remote).origin : undefined
      if (!origin) {
        throw new ConfigError(
          `${options.where}: token is set, but the remote is not an https URL`,
          'a token is sent only to https remotes; use an ssh key or a local path otherwise',
        )
      }
      const basic = Buffer.from(`x-access-token:${options.token}`).toString('base64')
      settings.push([`http.${origin}/.extraHeader`, `Authorization: Basic ${basic}`])
    }
    const env: NodeJS.ProcessEnv = { ...options.env }
    // Unattended: nothing may open an editor, a pager or a password prompt.
    for (const name of INTERACTIVE_VARIABLES) delete env[name]
    Object.assign(env, {
      GIT_TERMINAL_PROMPT: '0',
      GCM_INTERACTIVE: 'never',
      GIT_AUTHOR_NAME: options.author.name,
      GIT_AUTHOR_EMAIL: options.author.email,
      GIT_AUTHOR_DATE: options.author.time,
      GIT_COMMITTER_NAME: options.author.name,
      GIT_COMMITTER_EMAIL: options.author.email,
      GIT_COMMITTER_DATE: options.author.time,
    })
    // Appended after the user's own GIT_CONFIG_* entries, if any.
    const first = Number.parseInt(env.GIT_CONFIG_COUNT ?? '0', 10) || 0
    settings.forEach(([key, value], i) => {
      env[`GIT_CONFIG_KEY_${first + i}`] = key
      env[`GIT_CONFIG_VALUE_${first + i}`] = value
    })
    env.GIT_CONFIG_COUNT = String(first + settings.length)
    await mkdir(options.workTree, { recursive: true })
    const git = simpleGit({
      baseDir: options.workTree,
      maxConcurrentProcesses: 1,
      // simple-git guards GIT_* variables against injection; this environment is the user's own
      // (a corporate GIT_SSL_CAINFO, an ssh key in GIT_SSH_COMMAND) plus our GIT_CONFIG_* entries.
      unsafe: {
        allowUnsafeConfigEnvCount: true,
        allowUnsafeSshCommand: true,
        allowUnsafeConfigPaths: true,
        allowUnsafeGitProxy: true,
        allowUnsafeTemplateDir: true,
        allowUnsafeExec: true,
      },
      allowEnvironment: Object.keys(env),
    }).env(env)
    const secrets = options.token
      ? [options.token, Buffer.from(`x-access-token:${options.token}`).toString('base64')]
      : []
    const repository = new BackupsRepository(
      git,
      options.workTree,
      options.branch,
      options.where,
      redactor(secrets),
    )
    await repository.run('prepare the working clone', async () => {
      await git.init(['--initial-branch', options.branch])
      await git.addRemote('origin', remote)
    })
    return repository
  }

  /**
   * Brings the working clone to the remote branch's tip (depth 1: only the tip is needed);
   * false when the branch does not exist yet (a new backups repository).
   */
  async fetchTip(): Promise<boolean> {
    return this.run(`fetch ${this.branch}`, async () => {
      const heads = await this.git.listRemote(['--heads', 'origin', this.branch])
      if (heads.trim() === '') return false
      await this.git.fetch(['--depth', '1', 'origin', this.branch])
      await this.git.reset(['--hard', 'FETCH_HEAD'])
      return true
    })
  }

  /** Commits every change in `directory`; the new commit, or undefined when nothing changed. */
  async commit(directory: string, message: string): Promise<string | undefined> {
    return this.run('commit', async () => {
      await this.git.raw(['add', '--all', '--', directory])
      const status = await this.git.raw(['status', '--porcelain', '--', directory])
      if (status.trim() === '') return undefined
      await this.git.raw(['commit', '--quiet', '--message', message])
      return (await this.git.revparse(['HEAD'])).trim()
    })
  }

  /** The current commit, or undefined in an empty repository. */
  async head(): Promise<string | undefined> {
    return this.run('read HEAD', async () => {
      const head = await this.git.raw(['rev-parse', '--verify', '--quiet', 'HEAD']).catch(() => '')
      return head.trim() || undefined
    })
  }

  /** Pushes the branch; 'rejected' when the remote moved on meanwhile (never forced). */
  async push(): Promise<'pushed' | 'rejected'> {
    try {
      await this.git.raw(['push', '--quiet', 'origin', `HEAD:refs/heads/${this.branch}`])
      return 'pushed'
    } catch (error) {
      const text = errorMessage(error)
      if (/\[rejected\]|non-fast-forward|fetch first|stale info|cannot lock ref/i.test(text)) {
        return 'rejected'
      }
      throw this.failure('push', error)
    }
  }

  /** Fetches one commit (a point in time to restore), by id or failing that with the branch. */
  async fetchCommit(commit: string): Promise<void> {
    await this.run(`fetch commit ${commit.slice(0, 12)}`, async () => {
      try {
        await this.git.fetch(['--depth', '1', 'origin', commit])
      } catch {
        // A server that refuses to serve a commit by id: the whole branch has it.
        await this.git.fetch(['origin', this.branch])
      }
      await this.git.raw(['cat-file', '-e', `${commit}^{commit}`]).catch(() => {
        throw new SourceError(
          `${this.where}: commit ${commit} is not in the backups repository (branch ${this.branch})`,
          'the snapshot names a commit that was removed from the remote (a force-push or a deleted branch)',
        )
      })
    })
  }

  /** The files below `directory` at `commit`, relative to it. */
  async files(commit: string, directory: string): Promise<string[]> {
    return this.run('list files', async () => {
      const listing = await this.git.raw([
        'ls-tree',
        '-r',
        '-z',
        '--name-only',
        commit,
        '--',
        `${directory}/`,
      ])
      return listing
        .split('\0')
        .filter(Boolean)
        .map((path) => path.slice(directory.length + 1))
    })
  }

  /** One file's bytes at `commit`. */
  async read(commit: string, path: string): Promise<Buffer> {
    return this.run(`read ${path}`, () => this.git.binaryCatFile(['blob', `${commit}:${path}`]))
  }

  private async run<T>(what: string, work: () => Promise<T>): Promise<T> {
    try {
      return await work()
    } catch (error) {
      if (error instanceof SourceError || error instanceof ConfigError) throw error
      throw this.failure(what, error)
    }
  }

  private failure(what: string, error: unknown): SourceError {
    const text = this.redact(errorMessage(error)).trim()
    const lines = text
      .split('\n')
      .filter((line) => line.trim() !== '')
      .slice(-8)
    const denied = /401|403|authentication|permission denied|could not read username/i.test(text)
    // "could not read Username … terminal prompts disabled" is how git reports an HTTP 401.
    const why = denied ? ' (the server refused the credentials: authentication failed)' : ''
    return new SourceError(
      `${this.where}: git could not ${what}${why}:\n${lines.map((line) => `  ${line}`).join('\n')}`,
      denied
        ? 'check the token (a fine-grained token needs Contents: read and write on the backups repository) or the ssh key'
        : 'check the remote and the branch, and that this machine can reach them',
    )
  }
}

/**
 * A remote URL git understands. A local path is resolved against the configuration's folder.
 * Credentials in the URL are refused: they would end up in argv and .git/config.
 */
function remoteUrl(remote: string, resolvePath: (path: string) => string, where: string): string {
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(remote)?.[1]?.toLowerCase()
  if (scheme === 'http' || scheme === 'https') {
    const url = new URL(remote)
    if (url.username || url.password) {
      throw new ConfigError(
        `${where}: the remote URL carries credentials`,
        "put the token in the source's `token:` setting (e.g. token: ${BACKUPS_REPO_TOKEN}) and remove it from the URL",
      )
    }
    return remote
  }
  if (scheme || /^[^/\\]+@[^/\\]+:/.test(remote)) return remote // ssh://, file://, git@host:path
  return isAbsolute(remote) ? remote : resolve(resolvePath(remote))
}
