import { createRequire as __kluisCreateRequire } from 'node:module'; const require = __kluisCreateRequire(import.meta.url);

// src/core/errors.ts
var KluisError = class extends Error {
  /** What the user can do about it, shown after the message. */
  hint;
  constructor(message, hint) {
    super(message);
    this.name = new.target.name;
    this.hint = hint;
  }
};
var ConfigError = class extends KluisError {
  exitCode = 2;
};
var KeyError = class extends KluisError {
  exitCode = 1;
};
var StorageError = class extends KluisError {
  exitCode = 1;
};
var IntegrityError = class extends KluisError {
  constructor(object, detail, hint) {
    super(`${object}: ${detail}`, hint);
    this.object = object;
    this.detail = detail;
  }
  object;
  detail;
  exitCode = 1;
};
var SourceError = class extends KluisError {
  exitCode = 1;
};
var RefusedError = class extends KluisError {
  exitCode = 1;
};
function errorMessage(error) {
  return error instanceof Error ? error.message : String(error);
}
var systemErrors = {
  EACCES: ["permission denied", "check that this user may read (or write) it"],
  EPERM: ["operation not permitted", "check that this user may read (or write) it"],
  ENOSPC: ["no space left on the device", "free space, or set KLUIS_TMPDIR to a larger disk"],
  EDQUOT: ["disk quota exceeded", "free space, or set KLUIS_TMPDIR to a larger disk"],
  EROFS: ["the file system is read-only", "choose a writable location"],
  ENOENT: ["no such file or directory", "check the path"],
  ENOTDIR: ["a part of the path is not a directory", "check the path"],
  EMFILE: ["too many open files", "raise the limit (ulimit -n)"],
  EIO: ["input/output error", "check the disk"]
};
function describeSystemError(error) {
  const { code, path, syscall } = error ?? {};
  const known = code ? systemErrors[code] : void 0;
  if (!known) return void 0;
  const what = path ? `cannot ${syscall ?? "access"} ${path}` : `${syscall ?? "a system call"} failed`;
  return { message: `${what}: ${known[0]} (${code})`, hint: known[1] };
}

export {
  KluisError,
  ConfigError,
  KeyError,
  StorageError,
  IntegrityError,
  SourceError,
  RefusedError,
  errorMessage,
  describeSystemError
};
