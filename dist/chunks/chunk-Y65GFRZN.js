import { createRequire as __kluisCreateRequire } from 'node:module'; const require = __kluisCreateRequire(import.meta.url);

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
  secretForms,
  redactor
};
