#!/usr/bin/env node

// src/cli/bin.ts
var [major = 0, minor = 0] = process.versions.node.split(".").map(Number);
if (major < 22 || major === 22 && minor < 16) {
  process.stderr.write(
    `kluis: Node ${process.versions.node} is too old
  hint: kluis needs Node 22.16 or newer (24 recommended)
`
  );
  process.exit(2);
}
var emitWarning = process.emitWarning.bind(process);
process.emitWarning = ((warning, ...rest) => {
  if (String(warning).includes("SQLite is an experimental feature")) return;
  return emitWarning(warning, ...rest);
});
var bundle = "./cli-main.js";
await import(bundle);
