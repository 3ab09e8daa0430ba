// Quoting a value in an error message (issue 10 item 6): every refusal
// names the bad value, but never more than a short prefix of it, so a
// 100 KB argument cannot turn into a 100 KB error line.

/** JSON-quoted, cut to `max` characters with an ellipsis. */
export function quote(value: unknown, max = 60): string {
  const s = typeof value === "string" ? value : String(value);
  return JSON.stringify(s.length > max ? `${s.slice(0, max)}…` : s);
}
