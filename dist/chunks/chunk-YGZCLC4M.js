import { createRequire as __kluisCreateRequire } from 'node:module'; const require = __kluisCreateRequire(import.meta.url);

// src/storage/s3-multipart-journal.ts
import { appendFileSync, readFileSync } from "node:fs";
var MultipartJournal = class {
  constructor(path) {
    this.path = path;
  }
  path;
  started(upload) {
    this.append({ started: upload });
  }
  finished(uploadId) {
    this.append({ finished: uploadId });
  }
  append(line) {
    appendFileSync(this.path, `${JSON.stringify(line)}
`, { mode: 384 });
  }
};
function unfinishedUploads(path) {
  let text;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    if (error.code === "ENOENT") return [];
    throw error;
  }
  const open = /* @__PURE__ */ new Map();
  for (const line of text.split("\n")) {
    let entry;
    try {
      entry = JSON.parse(line);
    } catch {
      continue;
    }
    if (typeof entry !== "object" || entry === null) continue;
    if ("started" in entry && entry.started) open.set(entry.started.uploadId, entry.started);
    if ("finished" in entry && typeof entry.finished === "string") open.delete(entry.finished);
  }
  return [...open.values()];
}

export {
  MultipartJournal,
  unfinishedUploads
};
