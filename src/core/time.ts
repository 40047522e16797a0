/** An ISO 8601 date or time ("2026-11-20", "2026-11-20T10:00:00Z"); undefined if it is not one. */
export function parseTimestamp(text: string): Date | undefined {
  const time = Date.parse(text)
  if (!/^\d{4}-\d{2}-\d{2}/.test(text) || Number.isNaN(time)) return undefined
  return new Date(time)
}
