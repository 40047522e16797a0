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
const bundle = './cli-main.js' // a variable, so the bundler leaves the import to run time
await import(bundle)
