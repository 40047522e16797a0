import { createRequire as __kluisCreateRequire } from 'node:module'; const require = __kluisCreateRequire(import.meta.url);

// src/core/interrupt.ts
import { mkdtempSync, rmSync } from "node:fs";
import { rm } from "node:fs/promises";
var temporaryPaths = /* @__PURE__ */ new Set();
var asyncCleanups = /* @__PURE__ */ new Set();
function onInterrupt(cleanup) {
  asyncCleanups.add(cleanup);
  return () => asyncCleanups.delete(cleanup);
}
var ASYNC_CLEANUP_MS = 5e3;
var childProcesses = /* @__PURE__ */ new Set();
function trackChildProcess(child) {
  childProcesses.add(child);
  return () => childProcesses.delete(child);
}
function temporaryDirectory(prefix) {
  const path = mkdtempSync(prefix);
  temporaryPaths.add(path);
  return {
    path,
    async remove() {
      await rm(path, { recursive: true, force: true });
      temporaryPaths.delete(path);
    }
  };
}
function cleanUpAfterInterrupt() {
  for (const child of childProcesses) child.kill("SIGKILL");
  childProcesses.clear();
  for (const path of temporaryPaths) {
    try {
      rmSync(path, { recursive: true, force: true, maxRetries: 5, retryDelay: 20 });
    } catch {
    }
  }
  temporaryPaths.clear();
}
function exitCleanlyOnSignals(say) {
  for (const [signal, code] of [
    ["SIGINT", 130],
    ["SIGTERM", 143]
  ]) {
    process.once(signal, () => {
      cleanUpAfterInterrupt();
      const pending = [...asyncCleanups].map((cleanup) => cleanup().catch(() => void 0));
      asyncCleanups.clear();
      const timeout = new Promise((resolve) => setTimeout(resolve, ASYNC_CLEANUP_MS).unref());
      void Promise.race([Promise.all(pending), timeout]).then(() => {
        say(
          `kluis: interrupted by ${signal}; temporary files were removed (an unfinished backup leaves no snapshot)`
        );
        process.exit(code);
      });
    });
  }
}

export {
  onInterrupt,
  trackChildProcess,
  temporaryDirectory,
  exitCleanlyOnSignals
};
