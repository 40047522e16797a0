import { createRequire as __kluisCreateRequire } from 'node:module'; const require = __kluisCreateRequire(import.meta.url);
import {
  cleanUpScratch,
  debug,
  info,
  warning
} from "./chunks/chunk-N25JJIJZ.js";
import "./chunks/chunk-YGZCLC4M.js";
import {
  errorMessage
} from "./chunks/chunk-ZX3CBUM6.js";
import "./chunks/chunk-IPUA4CZY.js";

// src/action/post.ts
try {
  await cleanUpScratch({
    info: (message) => info(message),
    warn: (message) => warning(message),
    debug: (message) => debug(message)
  });
} catch (error) {
  warning(`kluis could not clean up after itself: ${errorMessage(error)}`);
}
