import { createRequire as __kluisCreateRequire } from 'node:module'; const require = __kluisCreateRequire(import.meta.url);

// src/storage/network-errors.ts
var NETWORK_ERROR_CODES = /* @__PURE__ */ new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ETIMEDOUT",
  "EPIPE",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ECONNABORTED",
  "ERR_STREAM_PREMATURE_CLOSE",
  "REQUEST_SEND_ERROR",
  "TimeoutError",
  "RequestTimeout",
  "AbortError"
]);

export {
  NETWORK_ERROR_CODES
};
