import { createRequire as __kluisCreateRequire } from 'node:module'; const require = __kluisCreateRequire(import.meta.url);

// src/storage/delete-probe.ts
import { randomBytes } from "node:crypto";
async function deleteRightsWarning(storage) {
  const probe = `probes/delete-${randomBytes(8).toString("hex")}`;
  try {
    await storage.putIfAbsent(probe, Buffer.from("kluis check: may these credentials delete?\n"));
  } catch {
    return [];
  }
  try {
    await storage.delete(probe);
  } catch {
    return [];
  }
  if (await storage.stat(probe).catch(() => ({ size: 0 })) !== void 0) return [];
  return [
    `the credentials may delete objects in ${storage.location}: a stolen CI key could remove the backups; back up with a key that lacks delete rights, or enable object lock`
  ];
}

export {
  deleteRightsWarning
};
