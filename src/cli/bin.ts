#!/usr/bin/env node
// The `kluis` command. The bundle imports APIs that older Node releases lack (zstd, node:sqlite),
// which would fail with an obscure link error; check the version first, then load it.
const [major = 0, minor = 0] = process.versions.node.split('.').map(Number)
if (major < 22 || (major === 22 && minor < 16)) {
  process.stderr.write(
    `kluis: Node ${process.versions.node} is too old\n  hint: kluis needs Node 22.16 or newer (24 recommended)\n`,
  )
  process.exit(2)
}
// Node 22 flags node:sqlite as experimental on every run; that warning is noise for our users.
const emitWarning = process.emitWarning.bind(process)
process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
  if (String(warning).includes('SQLite is an experimental feature')) return
  return (emitWarning as (...args: unknown[]) => void)(warning, ...rest)
}) as typeof process.emitWarning
const bundle = './cli-main.js' // a variable, so the bundler leaves the import to run time
await import(bundle)
