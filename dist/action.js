import { createRequire as __kluisCreateRequire } from 'node:module'; const require = __kluisCreateRequire(import.meta.url);

// src/action/main.ts
async function run() {
}

// src/action/index.ts
await run();
