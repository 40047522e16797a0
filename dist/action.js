import { createRequire as __kluisCreateRequire } from 'node:module'; const require = __kluisCreateRequire(import.meta.url);
import {
  backup,
  check,
  databaseScheme,
  formatBytes,
  formatDuration,
  formatTime,
  listSnapshots,
  loadConfig,
  parseDatabaseUrl,
  parseDuration,
  parseTimestamp,
  prune,
  restore,
  restoreTest
} from "./chunks/chunk-BOFH3QLS.js";
import {
  debug,
  error,
  getBooleanInput,
  getInput,
  info,
  isDebug,
  prepareScratch,
  setFailed,
  setOutput,
  setSecret,
  summary,
  warning
} from "./chunks/chunk-N25JJIJZ.js";
import {
  exitCleanlyOnSignals
} from "./chunks/chunk-2KNW7CCO.js";
import "./chunks/chunk-YGZCLC4M.js";
import "./chunks/chunk-2RNEQBIT.js";
import "./chunks/chunk-DJGOHILF.js";
import {
  secretForms
} from "./chunks/chunk-Y65GFRZN.js";
import {
  ConfigError,
  KluisError,
  describeSystemError,
  errorMessage
} from "./chunks/chunk-ZX3CBUM6.js";
import "./chunks/chunk-IPUA4CZY.js";

// src/action/commands.ts
import { tmpdir } from "node:os";
import { join } from "node:path";
async function runCommand(settings, config, reporter, env) {
  switch (settings.command) {
    case "backup": {
      const result = await backup(
        config,
        settings.sources.length > 0 ? { sources: settings.sources } : {},
        reporter,
        env
      );
      reporter.info(
        `snapshot ${result.snapshotId} saved: ${formatBytes(result.bytesAdded)} added for ${formatBytes(result.bytesTotal)} processed in ${formatDuration(result.durationSeconds)}`
      );
      return { command: "backup", result };
    }
    case "snapshots": {
      const snapshots = await listSnapshots(config, reporter, env);
      for (const s of snapshots) {
        reporter.info(
          `${s.id.slice(0, 8)}  ${formatTime(s.time)}  ${s.host}  ${formatBytes(s.size)}`
        );
      }
      reporter.info(`${snapshots.length} snapshot(s)`);
      return { command: "snapshots", snapshots };
    }
    case "restore": {
      const result = await restore(
        config,
        {
          // readInputs made sure a restore has a target.
          target: settings.target ?? "",
          force: settings.force,
          ...settings.keyPaths.length > 0 ? { keyPaths: settings.keyPaths } : {},
          ...settings.snapshot ? { snapshot: settings.snapshot } : {},
          ...settings.at ? { at: settings.at } : {},
          ...settings.sources.length > 0 ? { sources: settings.sources } : {}
        },
        reporter,
        env
      );
      for (const s of result.sources) reporter.info(`${s.name}: ${s.description} \u2192 ${s.path}`);
      reporter.info(
        `restored snapshot ${result.snapshotId} of ${formatTime(result.time)} in ${formatDuration(result.durationSeconds)}`
      );
      return { command: "restore", result };
    }
    case "check": {
      const result = await check(
        config,
        {
          readData: settings.readData,
          ...settings.maxAge !== void 0 ? { maxAge: settings.maxAge } : {},
          ...settings.keyPaths.length > 0 ? { keyPaths: settings.keyPaths } : {}
        },
        reporter,
        env
      );
      for (const problem of result.problems) reporter.info(`problem: ${problem}`);
      reporter.info(
        `${result.snapshots} snapshot(s), ${result.chunksReferenced} chunk(s) referenced, ${result.chunksRead} read; ${result.problems.length} problem(s)`
      );
      return { command: "check", result };
    }
    case "restore-test": {
      const reportPath = join(env.RUNNER_TEMP || tmpdir(), "kluis-restore-test.json");
      const result = await restoreTest(
        config,
        {
          alsoRandomOlder: settings.alsoRandomOlder,
          reportFile: reportPath,
          ...settings.keyPaths.length > 0 ? { keyPaths: settings.keyPaths } : {},
          ...settings.snapshot ? { snapshot: settings.snapshot } : {},
          ...settings.at ? { at: settings.at } : {}
        },
        reporter,
        env
      );
      for (const s of result.sources) {
        reporter.info(
          `${s.name}: ${s.passed ? "passed" : "FAILED"} in ${formatDuration(s.seconds)}: ${s.detail}`
        );
      }
      for (const failure of result.failures) reporter.info(`failure: ${failure}`);
      return { command: "restore-test", result, reportPath };
    }
    case "prune": {
      const result = await prune(config, { dryRun: settings.dryRun }, reporter, env);
      for (const d of result.decisions) {
        reporter.info(
          `${d.id.slice(0, 8)}  ${formatTime(d.time)}  ${d.keep ? `keep: ${d.reasons.join("; ")}` : "remove"}`
        );
      }
      reporter.info(
        result.dryRun ? `dry run: ${result.removedSnapshots} snapshot(s) would be removed` : `removed ${result.removedSnapshots} snapshot(s) and ${result.removedChunks} chunk(s), freeing ${formatBytes(result.freedBytes)}`
      );
      return { command: "prune", result };
    }
  }
}

// src/action/inputs.ts
var COMMANDS = [
  "backup",
  "snapshots",
  "restore",
  "check",
  "prune",
  "restore-test"
];
function readInputs() {
  const command = parseCommand(getInput("command", { required: true }));
  const settings = {
    command,
    config: getInput("config") || "kluis.yml",
    sources: parseList(getInput("source")),
    snapshot: getInput("snapshot") || void 0,
    at: parseTime(getInput("at")),
    target: getInput("target") || void 0,
    keyPaths: parseList(getInput("key")),
    force: booleanInput("force"),
    readData: booleanInput("read-data"),
    maxAge: getInput("max-age") ? parseMaxAge(getInput("max-age")) : void 0,
    dryRun: booleanInput("dry-run"),
    alsoRandomOlder: booleanInput("also-random-older")
  };
  checkCombination(settings);
  return settings;
}
function parseCommand(value) {
  const command = COMMANDS.find((name) => name === value);
  if (!command) {
    throw new ConfigError(`Invalid command '${value}'. Expected one of: ${COMMANDS.join(", ")}.`);
  }
  return command;
}
function parseList(value) {
  return value.split(/[,\n]/).map((item) => item.trim()).filter((item) => item !== "");
}
function parseTime(value) {
  if (value === "") return void 0;
  const time = parseTimestamp(value);
  if (!time) {
    throw new ConfigError(
      `Invalid at '${value}'. Expected an ISO 8601 time, e.g. 2026-11-20T10:00:00Z.`
    );
  }
  return time;
}
function parseMaxAge(value) {
  try {
    return parseDuration(value);
  } catch {
    throw new ConfigError(`Invalid max-age '${value}'. Expected a duration such as 24h or 2d.`);
  }
}
function booleanInput(name) {
  return getInput(name) !== "" && getBooleanInput(name);
}
function checkCombination(settings) {
  if (settings.command === "restore" && !settings.target) {
    throw new ConfigError(
      "Input 'target' is required for restore.",
      "set target to the directory to restore into"
    );
  }
  if (settings.snapshot && settings.at) {
    throw new ConfigError("Inputs 'snapshot' and 'at' exclude each other; give one of them.");
  }
  if (settings.command === "check" && settings.keyPaths.length > 0 && !settings.readData) {
    throw new ConfigError(
      "Input 'key' is only used by check when 'read-data' is true.",
      "set read-data: true to decrypt and verify every chunk, or remove 'key'"
    );
  }
}

// src/action/outputs.ts
function outputsFor(outcome, durationSeconds) {
  const duration = { "duration-seconds": durationSeconds.toFixed(1) };
  switch (outcome.command) {
    case "backup":
      return {
        "snapshot-id": outcome.result.snapshotId,
        "bytes-added": String(outcome.result.bytesAdded),
        "bytes-total": String(outcome.result.bytesTotal),
        ...duration
      };
    case "restore":
      return { "snapshot-id": outcome.result.snapshotId, ...duration };
    case "check": {
      const age = outcome.result.newestSnapshotAgeHours;
      return {
        problems: String(outcome.result.problems.length),
        ...age !== void 0 ? { "newest-snapshot-age-hours": age.toFixed(1) } : {},
        ...duration
      };
    }
    case "restore-test":
      return {
        passed: String(outcome.result.passed),
        "rto-seconds": outcome.result.rtoSeconds.toFixed(1),
        ...outcome.result.rpoHours !== void 0 ? { "rpo-hours": outcome.result.rpoHours.toFixed(1) } : {},
        "report-path": outcome.reportPath,
        "snapshot-id": outcome.result.snapshot.id,
        ...duration
      };
    case "prune":
      return { "snapshots-removed": String(outcome.result.removedSnapshots), ...duration };
    case "snapshots":
      return duration;
  }
}

// src/action/reporter.ts
import { randomBytes } from "node:crypto";
var MAX_ANNOTATIONS = 10;
async function withCommandsStopped(work) {
  const token = randomBytes(16).toString("hex");
  const warnings = [];
  const reporter = {
    info: (message) => info(message),
    warn: (message) => {
      info(`warning: ${message}`);
      warnings.push(message);
    },
    // ::debug:: is a workflow command too, so while they are off debug text is plain log text.
    debug: (message) => {
      if (isDebug()) info(`debug: ${message}`);
    }
  };
  process.stdout.write(`::stop-commands::${token}
`);
  try {
    return await work(reporter);
  } finally {
    process.stdout.write(`::${token}::
`);
    annotate(warnings);
  }
}
function annotate(warnings) {
  const shown = warnings.length <= MAX_ANNOTATIONS ? warnings : warnings.slice(0, MAX_ANNOTATIONS - 1);
  for (const warning2 of shown) warning(warning2);
  const rest = warnings.length - shown.length;
  if (rest > 0) warning(`${rest} more warning(s); the job log has all of them`);
}

// src/action/secrets.ts
var SECRET_VARIABLES = [
  "KLUIS_WRITER_KEY",
  "KLUIS_READER_KEY",
  "KLUIS_WRITER_PASSPHRASE",
  "KLUIS_READER_PASSPHRASE",
  "AWS_SECRET_ACCESS_KEY",
  "AWS_SESSION_TOKEN",
  "AZURE_STORAGE_KEY",
  "AZURE_STORAGE_SAS_TOKEN",
  "AZURE_STORAGE_CONNECTION_STRING"
];
var CONNECTION_STRING_SECRETS = /(?:AccountKey|SharedAccessSignature)=([^;]+)/g;
function maskSecrets(env) {
  for (const name of SECRET_VARIABLES) {
    for (const line of (env[name] ?? "").split(/\r?\n/)) {
      const secret = line.trim();
      if (secret !== "") setSecret(secret);
    }
  }
  for (const [, secret] of (env.AZURE_STORAGE_CONNECTION_STRING ?? "").matchAll(
    CONNECTION_STRING_SECRETS
  )) {
    if (secret) setSecret(secret);
  }
}
function maskDatabasePasswords(config, target) {
  const urls = config.sources.flatMap((source) => "url" in source ? [source.url] : []);
  for (const text of [...urls, target ?? ""]) {
    if (!databaseScheme(text)) continue;
    try {
      const { password } = parseDatabaseUrl(text, "url");
      for (const form of secretForms(password ?? "")) setSecret(form);
    } catch {
    }
  }
}

// src/action/summary.ts
var MAX_LISTED_PROBLEMS = 500;
async function writeSummary(outcome) {
  if (!process.env.GITHUB_STEP_SUMMARY) return;
  const summary2 = summary;
  switch (outcome.command) {
    case "backup": {
      const { result } = outcome;
      const rows = result.sources.map((s) => [
        html(s.name),
        html(s.type),
        formatBytes(s.size),
        `${s.newChunks} of ${s.chunks}`,
        formatBytes(s.storedAdded)
      ]);
      const newChunks = result.sources.reduce((sum, s) => sum + s.newChunks, 0);
      const chunks = result.sources.reduce((sum, s) => sum + s.chunks, 0);
      const stored = result.sources.reduce((sum, s) => sum + s.storedAdded, 0);
      summary2.addHeading("kluis backup", 2).addTable([
        header("Source", "Type", "Size", "New chunks", "Stored"),
        ...rows,
        [
          // An empty cell would be written as an unclosed <td>: span the type column instead.
          { data: "<strong>Total</strong>", colspan: "2" },
          formatBytes(result.bytesTotal),
          `${newChunks} of ${chunks}`,
          formatBytes(stored)
        ]
      ]).addRaw(
        `<p>Snapshot <code>${result.snapshotId}</code> of ${html(formatTime(result.time))} UTC saved: ${formatBytes(result.bytesAdded)} added to the repository in ${formatDuration(result.durationSeconds)}.</p>`,
        true
      );
      break;
    }
    case "snapshots": {
      const { snapshots } = outcome;
      summary2.addHeading("kluis snapshots", 2).addTable([
        header("ID", "Time (UTC)", "Host", "Sources", "Size"),
        ...snapshots.map((s) => [
          `<code>${s.id}</code>`,
          html(formatTime(s.time)),
          html(s.host),
          html(s.sources.map((source) => source.name).join(", ")),
          formatBytes(s.size)
        ])
      ]).addRaw(`<p>${snapshots.length} snapshot(s).</p>`, true);
      break;
    }
    case "restore": {
      const { result } = outcome;
      summary2.addHeading("kluis restore", 2).addTable([
        header("Source", "Type", "Size", "Restored", "Path"),
        ...result.sources.map((s) => [
          html(s.name),
          html(s.type),
          formatBytes(s.size),
          html(s.description),
          `<code>${html(s.path)}</code>`
        ])
      ]).addRaw(
        `<p>Snapshot <code>${result.snapshotId}</code> of ${html(formatTime(result.time))} UTC verified and restored to <code>${html(result.target)}</code> in ${formatDuration(result.durationSeconds)}.</p>`,
        true
      );
      break;
    }
    case "check": {
      const { result } = outcome;
      summary2.addHeading("kluis check", 2).addTable([
        header(
          "Snapshots",
          "Chunks referenced",
          "Chunks read",
          "Unreferenced chunks",
          "Problems"
        ),
        [
          String(result.snapshots),
          String(result.chunksReferenced),
          String(result.chunksRead),
          String(result.unreferencedChunks),
          String(result.problems.length)
        ]
      ]);
      if (result.warnings.length > 0) {
        summary2.addRaw("<p>Warnings:</p>", true).addList(result.warnings.map(html));
      }
      if (result.problems.length === 0) summary2.addRaw("<p>No problems found.</p>", true);
      else {
        summary2.addList(result.problems.slice(0, MAX_LISTED_PROBLEMS).map(html));
        const rest = result.problems.length - MAX_LISTED_PROBLEMS;
        if (rest > 0)
          summary2.addRaw(`<p>\u2026 and ${rest} more; the job log has all of them.</p>`, true);
      }
      if (result.newestSnapshotAgeHours !== void 0) {
        summary2.addRaw(
          `<p>Newest snapshot of the least recently backed-up source: ${result.newestSnapshotAgeHours.toFixed(1)} hours old.</p>`,
          true
        );
      }
      break;
    }
    case "restore-test": {
      const { result } = outcome;
      summary2.addHeading(`kluis restore-test: ${result.passed ? "passed" : "FAILED"}`, 2).addTable([
        header("Source", "Type", "Snapshot", "Time", "Result"),
        ...result.sources.map((s) => [
          html(s.name),
          s.type,
          `<code>${s.snapshot.slice(0, 8)}</code>`,
          formatDuration(s.seconds),
          s.passed ? "passed" : "<strong>FAILED</strong>"
        ])
      ]).addRaw(
        `<p>RTO demonstrated: ${formatDuration(result.rtoSeconds)}` + (result.objectives.rto !== void 0 ? ` (objective ${formatDuration(result.objectives.rto)})` : "") + `. RPO demonstrated: ${result.rpoHours === void 0 ? "unknown" : `${result.rpoHours.toFixed(1)} h`}` + (result.objectives.rpo !== void 0 ? ` (objective ${result.objectives.rpo} h)` : "") + ".</p>",
        true
      );
      if (result.failures.length > 0) {
        summary2.addList(result.failures.slice(0, MAX_LISTED_PROBLEMS).map(html));
      }
      break;
    }
    case "prune": {
      const { result } = outcome;
      summary2.addHeading(result.dryRun ? "kluis prune (dry run)" : "kluis prune", 2).addTable([
        header("Snapshot", "Time", "Decision", "Why"),
        ...result.decisions.map((d) => [
          `<code>${d.id.slice(0, 8)}</code>`,
          html(formatTime(d.time)),
          d.keep ? "keep" : "remove",
          html(d.keep ? d.reasons.join("; ") : "not kept by any rule")
        ])
      ]).addRaw(
        result.dryRun ? `<p>${result.removedSnapshots} snapshot(s) would be removed; nothing was changed.</p>` : `<p>Removed ${result.removedSnapshots} snapshot(s) and ${result.removedChunks} chunk(s), freeing ${formatBytes(result.freedBytes)}.</p>`,
        true
      );
      break;
    }
  }
  await summary2.write();
}
function header(...cells) {
  return cells.map((data) => ({ data, header: true }));
}
function html(text) {
  return text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;").replaceAll('"', "&quot;");
}

// src/action/main.ts
async function run() {
  maskSecrets(process.env);
  try {
    prepareScratch(process.env);
    const settings = readInputs();
    const config = await loadConfig(settings.config, process.env);
    maskDatabasePasswords(config, settings.target);
    const started = performance.now();
    const outcome = await withCommandsStopped(
      (reporter) => runCommand(settings, config, reporter, process.env)
    );
    const seconds = (performance.now() - started) / 1e3;
    for (const [name, value] of Object.entries(outputsFor(outcome, seconds))) {
      setOutput(name, value);
    }
    await writeSummary(outcome);
    if (outcome.command === "restore-test" && !outcome.result.passed) {
      setFailed(
        `restore-test failed: ${outcome.result.failures.length} failure(s)
hint: the job summary and the log name each one; the report is at the report-path output`
      );
    }
    if (outcome.command === "check" && outcome.result.problems.length > 0) {
      setFailed(
        `check found ${outcome.result.problems.length} problem(s)
hint: the job summary and the log list them`
      );
    }
  } catch (error2) {
    fail(error2);
  }
}
function fail(error2) {
  if (error2 instanceof KluisError) {
    setFailed(error2.hint ? `${error2.message}
hint: ${error2.hint}` : error2.message);
    return;
  }
  const system = describeSystemError(error2);
  if (system) {
    setFailed(`${system.message}
hint: ${system.hint}`);
    return;
  }
  setFailed(errorMessage(error2));
  if (error2 instanceof Error && error2.stack) debug(error2.stack);
}

// src/action/index.ts
exitCleanlyOnSignals((message) => error(message));
await run();
