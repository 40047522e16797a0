// Bundles the CLI and the action into dist/ with esbuild. `--check` builds into a temporary
// folder and fails when dist/ differs: the committed bundle is what the action runs.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { build } from 'esbuild'

const check = process.argv.includes('--check')
const outdir = check ? mkdtempSync(join(tmpdir(), 'kluis-dist-')) : 'dist'
const { version } = JSON.parse(readFileSync('package.json', 'utf8'))

await build({
  entryPoints: { cli: 'src/cli/index.ts', action: 'src/action/index.ts' },
  outdir,
  bundle: true,
  platform: 'node',
  target: 'node22',
  format: 'esm',
  splitting: false,
  sourcemap: false,
  legalComments: 'none',
  logLevel: 'warning',
  define: { KLUIS_VERSION: JSON.stringify(version) },
  // Bundled CommonJS dependencies call require(): give the ESM bundle one.
  banner: {
    js: "import { createRequire as __kluisCreateRequire } from 'node:module'; const require = __kluisCreateRequire(import.meta.url);",
  },
})

if (check) {
  const stale = []
  for (const name of readdirSync(outdir)) {
    let committed
    try {
      committed = readFileSync(join('dist', name))
    } catch {
      committed = undefined
    }
    if (!committed?.equals(readFileSync(join(outdir, name)))) stale.push(`dist/${name}`)
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
