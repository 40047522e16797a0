import { createRequire as __kluisCreateRequire } from 'node:module'; const require = __kluisCreateRequire(import.meta.url);
import {
  removeScratch,
  warning
} from "./chunks/chunk-ZI45W76C.js";
import {
  errorMessage
} from "./chunks/chunk-ZX3CBUM6.js";
import "./chunks/chunk-IPUA4CZY.js";

// src/action/post.ts
try {
  removeScratch();
} catch (error) {
  warning(`kluis could not remove its temporary files: ${errorMessage(error)}`);
}
