import { createRequire as __kluisCreateRequire } from 'node:module'; const require = __kluisCreateRequire(import.meta.url);
import {
  Repository,
  backup,
  check,
  formatBytes,
  formatDuration,
  formatTime,
  generateKey,
  listLocks,
  listSnapshots,
  loadConfig,
  loadReaderKeys,
  loadWriterKey,
  openConfiguredStorage,
  parseDuration,
  parseTimestamp,
  prune,
  removeLocks,
  restore,
  restoreTest,
  textTable
} from "./chunks/chunk-BOFH3QLS.js";
import {
  exitCleanlyOnSignals
} from "./chunks/chunk-2KNW7CCO.js";
import "./chunks/chunk-2RNEQBIT.js";
import "./chunks/chunk-DJGOHILF.js";
import "./chunks/chunk-Y65GFRZN.js";
import {
  ConfigError,
  KluisError,
  RefusedError,
  describeSystemError,
  errorMessage
} from "./chunks/chunk-ZX3CBUM6.js";
import "./chunks/chunk-IPUA4CZY.js";

// src/cli/main.ts
import { parseArgs } from "node:util";

// src/commands/init.ts
async function init(config, reporter, env) {
  const writer = await loadWriterKey(config, env);
  const groups = /* @__PURE__ */ new Map();
  for (const group of config.keys.readers.keys())
    groups.set(group, await loadReaderKeys(config, group));
  const storage = await openConfiguredStorage(config, env);
  if (await storage.create() === "created") {
    reporter.info(`created ${storage.location}`);
  }
  let repository;
  let created = true;
  try {
    repository = await Repository.init(storage);
  } catch (error) {
    if (!(error instanceof RefusedError)) throw error;
    repository = await Repository.open(storage);
    created = false;
  }
  const groupsCreated = [];
  for (const [group, readers] of groups) {
    if (await repository.createDedupKey(group, readers, writer)) groupsCreated.push(group);
  }
  if (!created) {
    reporter.info(
      `repository at ${storage.location} already exists${groupsCreated.length ? `; added key group(s) ${groupsCreated.join(", ")}` : ""}`
    );
  }
  return { repository: storage.location, created, groupsCreated };
}

// src/commands/keys.ts
import { access, mkdir, open } from "node:fs/promises";
import { join } from "node:path";
async function generateKeys(options2) {
  const label = options2.name ?? "kluis";
  const reader = await generateKey({
    name: `${label} reader`,
    kind: options2.kind,
    ...options2.readerPassphrase ? { passphrase: options2.readerPassphrase } : {}
  });
  const writer = await generateKey({ name: `${label} writer`, kind: options2.kind });
  await mkdir(options2.out, { recursive: true });
  const files = [
    ["reader.asc", reader.publicArmored, 420],
    ["reader.key", reader.privateArmored, 384],
    ["writer.asc", writer.publicArmored, 420],
    ["writer.key", writer.privateArmored, 384]
  ];
  if (!options2.force) {
    for (const [name] of files) {
      const exists = await access(join(options2.out, name)).then(
        () => true,
        () => false
      );
      if (exists) {
        throw new RefusedError(
          `${join(options2.out, name)} already exists`,
          "keys are never overwritten: choose another --out directory, or pass --force"
        );
      }
    }
  }
  for (const [name, text, mode] of files) {
    const handle = await open(join(options2.out, name), "w", mode);
    try {
      await handle.chmod(mode);
      await handle.writeFile(text);
    } finally {
      await handle.close();
    }
  }
  const path = (name) => join(options2.out, name);
  return {
    directory: options2.out,
    reader: {
      public: path("reader.asc"),
      private: path("reader.key"),
      fingerprint: reader.fingerprint
    },
    writer: {
      public: path("writer.asc"),
      private: path("writer.key"),
      fingerprint: writer.fingerprint
    }
  };
}

// src/commands/unlock.ts
async function unlock(config, options2, reporter, env) {
  const storage = await openConfiguredStorage(config, env);
  const before = await listLocks(storage);
  const removed = await removeLocks(storage, { staleOnly: options2.staleOnly });
  for (const lock of removed) {
    if (before.some((listed) => listed.id === lock.id && !listed.stale)) {
      reporter.warn(
        `removed a lock that was still being refreshed: ${lock.command} on ${lock.host} (pid ${lock.pid}); make sure that process is not running`
      );
    }
  }
  return removed;
}

// src/cli/main.ts
var usage = `Usage: kluis <command> [options]

Commands:
  keys generate --out DIR [--rsa] [--force]   create reader and writer key pairs
  init                                        create the repository named in the configuration
  backup [--source NAME]... [--json]          back up the configured sources
  snapshots [--json]                          list snapshots
  restore --target DIR|URL [--snapshot ID | --at TIME] [--source NAME]... [--key FILE] [--force] [--json]
                                              restore into a folder, or one database source into
                                              postgres://USER@HOST:PORT/DB or mysql://\u2026 (created
                                              when missing; password in PGPASSWORD, not argv)
  restore-test [--snapshot ID | --at TIME] [--also-random-older] [--report FILE] [--key FILE] [--json]
                                              restore every source into a scratch target (a temp
                                              folder, or a new database on restore-test.postgres-url
                                              / mysql-url), verify it, remove it, and compare the
                                              time taken and the snapshots' age with objectives
  check [--read-data | --read-data-subset 10%] [--key FILE] [--max-age 24h] [--json]
                                              verify the repository, the storage's posture, key
                                              ages, and that every source has a recent snapshot
  prune [--dry-run] [--renew-locks] [--json]  remove what the retention policy does not keep
                                              (--renew-locks: extend every object lock now)
  unlock [--stale-only]                       remove locks (by default all: make sure no kluis
                                              runs on the repository)

Common options:
  --config FILE   configuration file (default: kluis.yml)
  --json          print the result as JSON on stdout
  -h, --help      show this help
  --version       print the version

The reader's private key comes from --key FILE (repeat it when key groups have different
readers) or KLUIS_READER_KEY (armored), with KLUIS_READER_PASSPHRASE when it has one. Exit codes: 0 success, 1 failure, 2 bad usage or configuration.`;
var options = {
  config: { type: "string", default: "kluis.yml" },
  json: { type: "boolean", default: false },
  help: { type: "boolean", short: "h", default: false },
  version: { type: "boolean", default: false },
  source: { type: "string", multiple: true },
  snapshot: { type: "string" },
  at: { type: "string" },
  target: { type: "string" },
  key: { type: "string", multiple: true },
  force: { type: "boolean", default: false },
  "read-data": { type: "boolean", default: false },
  out: { type: "string" },
  rsa: { type: "boolean", default: false },
  name: { type: "string" },
  host: { type: "string" },
  time: { type: "string" },
  "dry-run": { type: "boolean", default: false },
  "read-data-subset": { type: "string" },
  "max-age": { type: "string" },
  "stale-only": { type: "boolean", default: false },
  "renew-locks": { type: "boolean", default: false },
  "also-random-older": { type: "boolean", default: false },
  report: { type: "string" }
};
async function main(argv, env, io, version) {
  try {
    let parsed;
    try {
      parsed = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
    } catch (error) {
      throw new ConfigError(
        error.message.split("\n")[0] ?? "bad arguments",
        "see `kluis --help`"
      );
    }
    const { values, positionals } = parsed;
    if (values.version) {
      io.stdout(`kluis ${version}
`);
      return 0;
    }
    const [command, ...rest] = positionals;
    if (values.help || !command) {
      io.stdout(`${usage}
`);
      return command || values.help ? 0 : 2;
    }
    const reporter = cliReporter(io, env);
    await runCommand(command, rest, values, reporter, env, io);
    return 0;
  } catch (error) {
    return reportError(error, io, env);
  }
}
async function runCommand(command, rest, values, reporter, env, io) {
  const print = (json, text) => io.stdout(values.json ? `${JSON.stringify(json, null, 2)}
` : `${text()}
`);
  if (command === "keys") return keysCommand(rest, values, env, print);
  if (rest.length > 0)
    throw new ConfigError(`unexpected argument '${rest[0]}'`, "see `kluis --help`");
  const config = await loadConfigFor(command, values.config, env);
  switch (command) {
    case "init": {
      const result = await init(config, reporter, env);
      return print(
        result,
        () => result.created ? `created repository at ${result.repository}` : `repository at ${result.repository} is ready`
      );
    }
    case "backup": {
      const result = await backup(
        config,
        {
          ...values.source ? { sources: values.source } : {},
          ...values.host ? { host: values.host } : {},
          ...values.time ? { time: parseTime(values.time, "--time") } : {}
        },
        reporter,
        env
      );
      return print(result, () => {
        const rows = result.sources.map((s) => [
          s.name,
          s.type,
          formatBytes(s.size),
          `${s.newChunks} of ${s.chunks}`,
          formatBytes(s.storedAdded)
        ]);
        return [
          textTable(["Source", "Type", "Size", "New chunks", "Stored"], rows),
          "",
          `snapshot ${result.snapshotId.slice(0, 8)} saved (${result.snapshotId})`,
          `added to the repository: ${formatBytes(result.bytesAdded)} (${formatBytes(result.dataAdded)} of new data) for ${formatBytes(result.bytesTotal)} processed in ${formatDuration(result.durationSeconds)}`
        ].join("\n");
      });
    }
    case "snapshots": {
      const snapshots = await listSnapshots(config, reporter, env);
      return print(
        snapshots,
        () => snapshots.length === 0 ? "no snapshots" : `${textTable(
          ["ID", "Time (UTC)", "Host", "Sources", "Size"],
          snapshots.map((s) => [
            s.id.slice(0, 8),
            formatTime(s.time),
            s.host,
            s.sources.map((source) => source.name).join(", "),
            formatBytes(s.size)
          ])
        )}
${snapshots.length} snapshot(s)`
      );
    }
    case "restore": {
      if (!values.target)
        throw new ConfigError("restore needs --target DIR or a database URL", "see `kluis --help`");
      if (values.snapshot && values.at) throw new ConfigError("give --snapshot or --at, not both");
      const result = await restore(
        config,
        {
          target: values.target,
          force: values.force,
          ...values.key ? { keyPaths: values.key } : {},
          ...values.snapshot ? { snapshot: values.snapshot } : {},
          ...values.at ? { at: parseTime(values.at, "--at") } : {},
          ...values.source ? { sources: values.source } : {}
        },
        reporter,
        env
      );
      return print(
        result,
        () => [
          `restored snapshot ${result.snapshotId.slice(0, 8)} of ${formatTime(result.time)} to ${result.target}`,
          ...result.sources.map((s) => `  ${s.name}: ${s.description} \u2192 ${s.path}`),
          `verified and restored in ${formatDuration(result.durationSeconds)}`
        ].join("\n")
      );
    }
    case "restore-test": {
      if (values.snapshot && values.at) throw new ConfigError("give --snapshot or --at, not both");
      const result = await restoreTest(
        config,
        {
          alsoRandomOlder: values["also-random-older"],
          ...values.report ? { reportFile: values.report } : {},
          ...values.key ? { keyPaths: values.key } : {},
          ...values.snapshot ? { snapshot: values.snapshot } : {},
          ...values.at ? { at: parseTime(values.at, "--at") } : {}
        },
        reporter,
        env
      );
      print(result, () => {
        const rows = result.sources.map((s) => [
          s.name,
          s.type,
          s.snapshot.slice(0, 8),
          formatDuration(s.seconds),
          s.passed ? "passed" : "FAILED"
        ]);
        const objective = (value, show) => value === void 0 ? "" : ` (objective ${show(value)})`;
        return [
          textTable(["Source", "Type", "Snapshot", "Time", "Result"], rows),
          "",
          `RTO demonstrated: ${formatDuration(result.rtoSeconds)}${objective(result.objectives.rto, formatDuration)}`,
          `RPO demonstrated: ${result.rpoHours === void 0 ? "unknown" : formatDuration(result.rpoHours * 3600)}${objective(result.objectives.rpo, (hours) => formatDuration(hours * 3600))}`,
          ...result.failures.map((f) => `error: ${f}`),
          result.passed ? `restore test of snapshot ${result.snapshot.id.slice(0, 8)} passed` : `restore test failed: ${result.failures.length} failure(s)`
        ].join("\n");
      });
      if (!result.passed) throw new RestoreTestFailed(result.failures.length);
      return;
    }
    case "check": {
      const subset = values["read-data-subset"];
      const readData = values["read-data"] || subset !== void 0;
      if (values.key && !readData) throw new ConfigError("--key is only used with --read-data");
      const result = await check(
        config,
        {
          readData,
          ...subset !== void 0 ? { readDataSubset: parseFraction(subset) } : {},
          ...values["max-age"] ? { maxAge: parseDuration(values["max-age"]) } : {},
          ...values.key ? { keyPaths: values.key } : {}
        },
        reporter,
        env
      );
      print(
        result,
        () => [
          ...result.problems.map((p) => `error: ${p}`),
          `${result.snapshots} snapshot(s), ${result.chunksReferenced} chunk(s) referenced` + (readData ? `, ${result.chunksRead} read and verified` : ""),
          result.problems.length === 0 ? "no problems found" : `${result.problems.length} problem(s) found`
        ].join("\n")
      );
      if (result.problems.length > 0) throw new CheckFailed(result.problems.length);
      return;
    }
    case "prune": {
      const result = await prune(
        config,
        { dryRun: values["dry-run"], renewLocks: values["renew-locks"] },
        reporter,
        env
      );
      return print(result, () => {
        const rows = result.decisions.map((d) => [
          d.id.slice(0, 8),
          formatTime(d.time),
          d.keep ? "keep" : "remove",
          d.keep ? d.reasons.join("; ") : "not kept by any rule"
        ]);
        const done = result.dryRun ? `dry run: ${result.removedSnapshots} snapshot(s) would be removed; nothing was changed` : `removed ${result.removedSnapshots} snapshot(s) and ${result.removedChunks} chunk(s), freeing ${formatBytes(result.freedBytes)}`;
        return [textTable(["Snapshot", "Time", "Decision", "Why"], rows), "", done].join("\n");
      });
    }
    case "unlock": {
      const removed = await unlock(config, { staleOnly: values["stale-only"] }, reporter, env);
      return print(
        removed,
        () => removed.length === 0 ? "no locks to remove" : removed.map(
          (l) => `removed the lock of ${l.command} on ${l.host} (pid ${l.pid}) from ${l.created}`
        ).join("\n")
      );
    }
    default:
      throw new ConfigError(`unknown command '${command}'`, "see `kluis --help`");
  }
}
function parseFraction(text) {
  const match = /^(\d+(?:\.\d+)?)(%?)$/.exec(text.trim());
  const value = match ? Number(match[1]) / (match[2] ? 100 : 1) : Number.NaN;
  if (!(value > 0 && value <= 1)) {
    throw new ConfigError(
      `--read-data-subset ${text} is not a share of the data`,
      "give a percentage such as 10% (or a fraction such as 0.1)"
    );
  }
  return value;
}
async function keysCommand(rest, values, env, print) {
  if (rest[0] !== "generate" || rest.length > 1) {
    throw new ConfigError(
      `unknown keys command '${rest.join(" ")}'`,
      "use `kluis keys generate --out DIR`"
    );
  }
  if (!values.out) throw new ConfigError("keys generate needs --out DIR");
  const result = await generateKeys({
    out: values.out,
    kind: values.rsa ? "rsa" : "ecc",
    force: values.force,
    ...values.name ? { name: values.name } : {},
    ...env.KLUIS_READER_PASSPHRASE ? { readerPassphrase: env.KLUIS_READER_PASSPHRASE } : {}
  });
  print(
    result,
    () => [
      `reader key ${result.reader.fingerprint}`,
      `  public:  ${result.reader.public}   (list it in keys.readers)`,
      `  private: ${result.reader.private}   (keep it off CI; it decrypts backups)`,
      `writer key ${result.writer.fingerprint}`,
      `  public:  ${result.writer.public}   (keys.writer-public: restore trusts only this signer)`,
      `  private: ${result.writer.private}   (keys.writer, or the KLUIS_WRITER_KEY secret in CI)`
    ].join("\n")
  );
}
async function loadConfigFor(command, file, env) {
  const commands = [
    "init",
    "backup",
    "snapshots",
    "restore",
    "restore-test",
    "check",
    "prune",
    "unlock"
  ];
  if (!commands.includes(command)) {
    throw new ConfigError(`unknown command '${command}'`, "see `kluis --help`");
  }
  return loadConfig(file, env);
}
function parseTime(text, option) {
  const time = parseTimestamp(text);
  if (!time) {
    throw new ConfigError(
      `${option} '${text}' is not a time`,
      "use ISO 8601, e.g. 2026-11-20T10:00:00Z"
    );
  }
  return time;
}
var CheckFailed = class extends KluisError {
  exitCode = 1;
  constructor(count) {
    super(`check found ${count} problem(s)`);
  }
};
var RestoreTestFailed = class extends KluisError {
  exitCode = 1;
  constructor(count) {
    super(`restore-test found ${count} failure(s)`);
  }
};
function cliReporter(io, env) {
  return {
    info: (message) => io.stderr(`${message}
`),
    warn: (message) => io.stderr(`warning: ${message}
`),
    debug: (message) => {
      if (env.KLUIS_DEBUG) io.stderr(`debug: ${message}
`);
    }
  };
}
function reportError(error, io, env) {
  if (error instanceof KluisError) {
    io.stderr(`kluis: ${error.message}
`);
    if (error.hint) io.stderr(`  hint: ${error.hint}
`);
    return error.exitCode;
  }
  const system = describeSystemError(error);
  if (system) {
    io.stderr(`kluis: ${system.message}
  hint: ${system.hint}
`);
    return 1;
  }
  const message = errorMessage(error);
  io.stderr(`kluis: unexpected error: ${message}
`);
  if (env.KLUIS_DEBUG && error instanceof Error && error.stack) io.stderr(`${error.stack}
`);
  else
    io.stderr(
      "  hint: this is a bug in kluis; run again with KLUIS_DEBUG=1 and report the output\n"
    );
  return 1;
}

// src/cli/index.ts
exitCleanlyOnSignals((message) => process.stderr.write(`${message}
`));
var exitCode = await main(
  process.argv.slice(2),
  process.env,
  { stdout: (text) => process.stdout.write(text), stderr: (text) => process.stderr.write(text) },
  true ? "0.1.0" : "dev"
);
process.exitCode = exitCode;
