import { createRequire as __kluisCreateRequire } from 'node:module'; const require = __kluisCreateRequire(import.meta.url);
import {
  abortUnfinishedUploads,
  watchMultipartUploads
} from "./chunk-H2XU2DFA.js";
import "./chunk-2KNW7CCO.js";
import "./chunk-YGZCLC4M.js";
import "./chunk-Q2Q7FUMK.js";
import "./chunk-VUL3BGMR.js";
import "./chunk-Y65GFRZN.js";
import "./chunk-ZX3CBUM6.js";
import "./chunk-IPUA4CZY.js";
export {
  abortUnfinishedUploads,
  watchMultipartUploads
};
