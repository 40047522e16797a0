// Bundles the CLI and the action into dist/ with esbuild. `--check` builds into a temporary
// folder and fails when dist/ differs: the committed bundle is what the action runs.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { build } from 'esbuild'

const check = process.argv.includes('--check')
const outdir = check ? mkdtempSync(join(tmpdir(), 'kluis-dist-')) : 'dist'
// Chunk names carry content hashes: old ones would pile up next to the new.
if (!check) rmSync(outdir, { recursive: true, force: true })
const { version } = JSON.parse(readFileSync('package.json', 'utf8'))

const common = {
  outdir,
  bundle: true,
  platform: 'node',
  target: 'node22',
  format: 'esm',
  splitting: true,
  // The cloud SDKs are loaded with import() when a repository needs them: their own chunks.
  chunkNames: 'chunks/[name]-[hash]',
  sourcemap: false,
  legalComments: 'none',
  logLevel: 'warning',
  define: { KLUIS_VERSION: JSON.stringify(version) },
}

await build({
  ...common,
  entryPoints: {
    'cli-main': 'src/cli/index.ts',
    action: 'src/action/index.ts',
    post: 'src/action/post.ts',
  },
  // Bundled CommonJS dependencies call require(): give the ESM bundle one.
  banner: {
    js: "import { createRequire as __kluisCreateRequire } from 'node:module'; const require = __kluisCreateRequire(import.meta.url);",
  },
})
// The `kluis` bin: a tiny launcher that checks the Node version before loading cli-main.js.
await build({ ...common, entryPoints: { cli: 'src/cli/bin.ts' } })

if (check) {
  const stale = []
  const fresh = filesIn(outdir)
  for (const name of new Set([...fresh, ...filesIn('dist')])) {
    const built = fresh.includes(name) ? readFileSync(join(outdir, name)) : undefined
    const committed = tryRead(join('dist', name))
    if (!built || !committed?.equals(built)) stale.push(`dist/${name}`)
  }
  rmSync(outdir, { recursive: true, force: true })
  if (stale.length > 0) {
    console.error(
      `dist/ is stale: ${stale.join(', ')} differ from a fresh build. Run \`npm run build\` and commit dist/.`,
    )
    process.exit(1)
  }
  console.log('dist/ is current')
}

/** Every file below `dir` (chunks/ included), as relative paths. */
function filesIn(dir) {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => join(entry.parentPath, entry.name).slice(dir.length + 1))
}

function tryRead(path) {
  try {
    return readFileSync(path)
  } catch {
    return undefined
  }
}
