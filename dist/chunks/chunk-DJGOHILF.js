import { createRequire as __kluisCreateRequire } from 'node:module'; const require = __kluisCreateRequire(import.meta.url);

// src/storage/storage.ts
function isBulkData(name) {
  return name.startsWith("chunks/");
}
var ObjectNotFoundError = class extends Error {
  constructor(object) {
    super(`${object} does not exist`);
    this.object = object;
  }
  object;
};

export {
  isBulkData,
  ObjectNotFoundError
};
