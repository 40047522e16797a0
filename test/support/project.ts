import { spawnSync } from 'node:child_process'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { main } from '../../src/cli/main.js'
import { openRepository } from '../../src/commands/common.js'
import { generateKeys } from '../../src/commands/keys.js'
import { selectSnapshot } from '../../src/commands/select-snapshot.js'
import { loadConfig } from '../../src/config/config.js'
import { loadReaderPrivateKeys, loadWriterPublicKey } from '../../src/config/key-material.js'

/** What one CLI run printed and returned. */
export interface CliRun {
  code: number
  stdout: string
  stderr: string
}

/** Runs the CLI in this process (fast); `cwd`-relative paths are resolved against `dir`. */
export async function kluis(
  dir: string,
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<CliRun> {
  let stdout = ''
  let stderr = ''
  const previous = process.cwd()
  process.chdir(dir)
  try {
    const code = await main(
      args,
      { ...env },
      {
        stdout: (text) => {
          stdout += text
        },
        stderr: (text) => {
          stderr += text
        },
      },
      'test',
    )
    return { code, stdout, stderr }
  } finally {
    process.chdir(previous)
  }
}

/** The example configuration, as a user would write it. */
export const exampleConfig = `repository: file://./backup-repo
keys:
  readers: [keys/reader.asc]        # public keys: paths, armored text, or \${VAR}
  writer: keys/writer.key           # the writer's private key (in CI: \${KLUIS_WRITER_KEY})
  writer-public: keys/writer.asc    # what restore trusts as the signer; never taken from the repository
sources:
  - { name: app-db,  type: sqlite, path: data/app.db }
  - { name: uploads, type: files,  path: data/uploads, exclude: ["*.tmp"] }
`

export interface Project {
  dir: string
  /** Runs the CLI with `--config kluis.yml` already in place for commands that take it. */
  run(args: string[], env?: NodeJS.ProcessEnv): Promise<CliRun>
  cleanup(): Promise<void>
}

/**
 * A temporary project folder with keys (keys/reader.*, keys/writer.*), the example
 * configuration, a small SQLite database and an uploads folder. Nothing is initialised yet.
 */
export async function createProject(
  options: { config?: string; readerPassphrase?: string } = {},
): Promise<Project> {
  const dir = await mkdtemp(join(tmpdir(), 'kluis-test-'))
  await generateKeys({
    out: join(dir, 'keys'),
    kind: 'ecc',
    force: false,
    ...(options.readerPassphrase ? { readerPassphrase: options.readerPassphrase } : {}),
  })
  await mkdir(join(dir, 'data', 'uploads', 'docs'), { recursive: true })
  sqlite(join(dir, 'data', 'app.db'), [
    'CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT, bio BLOB)',
    "INSERT INTO users(name, bio) SELECT 'user ' || value, randomblob(200) FROM generate_series(1, 2000)",
  ])
  await writeFile(join(dir, 'data', 'uploads', 'docs', 'readme.txt'), 'hello uploads\n')
  await writeFile(join(dir, 'data', 'uploads', 'scratch.tmp'), 'excluded\n')
  await writeFile(join(dir, 'kluis.yml'), options.config ?? exampleConfig)
  return {
    dir,
    run: (args, env) => kluis(dir, withConfig(args), env),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  }
}

function withConfig(args: string[]): string[] {
  const [command] = args
  if (command === 'keys' || args.includes('--config')) return args
  return [...args, '--config', 'kluis.yml']
}

/** Runs SQL statements with the real sqlite3 tool. */
export function sqlite(file: string, statements: string[]): string {
  const result = spawnSync('sqlite3', [file], {
    input: `${statements.join(';\n')};\n`,
    encoding: 'utf8',
  })
  if (result.status !== 0) throw new Error(`sqlite3 failed: ${result.stderr}`)
  return result.stdout
}

/** Fails when a tool the test needs is missing, with what to install. In CI it must exist. */
export function requireTool(tool: string, debianPackage: string): void {
  const found = spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0
  if (!found) throw new Error(`this test needs '${tool}': apt-get install ${debianPackage}`)
}

/** The manifest facts of a source in the project's latest snapshot, read as a restore reads them. */
export async function latestFacts(
  project: Project,
  source: string,
  env: NodeJS.ProcessEnv = {},
): Promise<Record<string, unknown>> {
  const config = await loadConfig(join(project.dir, 'kluis.yml'), env)
  const writer = await loadWriterPublicKey(config)
  const repository = await openRepository(config, env)
  const index = await selectSnapshot(repository, writer, {})
  const entry = index.sources.find((s) => s.name === source)
  if (!entry) throw new Error(`the latest snapshot has no source ${source}`)
  const readers = await loadReaderPrivateKeys([join(project.dir, 'keys', 'reader.key')], env)
  const manifest = await repository.readManifest(index, entry.group, readers, writer)
  const facts = manifest.sources.find((s) => s.name === source)?.facts
  if (!facts) throw new Error(`no facts for ${source}`)
  return facts
}
