/**
 * The forms a secret takes in text: as given, percent-encoded and percent-decoded, since a
 * password travels in URLs. Secrets shorter than 3 characters are not masked: masking them
 * would mangle ordinary words.
 */
export function secretForms(secret: string): string[] {
  if (secret.length < 3) return []
  const forms = new Set([secret, encodeURIComponent(secret)])
  try {
    forms.add(decodeURIComponent(secret))
  } catch {
    // not percent-encoded: the plain form is enough
  }
  return [...forms]
}

/** Removes secrets from text that came from outside (a dump tool's stderr, a server's error). */
export function redactor(secrets: Iterable<string>): (text: string) => string {
  // Longest first, so that a form containing another is replaced whole.
  const forms = [...new Set([...secrets].flatMap(secretForms))].sort((a, b) => b.length - a.length)
  return (text) => forms.reduce((result, form) => result.replaceAll(form, '***'), text)
}
