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

// src/core/redact.ts
function secretForms(secret) {
  if (secret.length < 3) return [];
  const forms = /* @__PURE__ */ new Set([secret, encodeURIComponent(secret)]);
  try {
    forms.add(decodeURIComponent(secret));
  } catch {
  }
  return [...forms];
}
function redactor(secrets) {
  const forms = [...new Set([...secrets].flatMap(secretForms))].sort((a, b) => b.length - a.length);
  return (text) => forms.reduce((result, form) => result.replaceAll(form, "***"), text);
}

export {
  isBulkData,
  ObjectNotFoundError,
  secretForms,
  redactor
};
