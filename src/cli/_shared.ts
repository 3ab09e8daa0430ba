// Flags shared by several commands (STYLE.md #5).
import type { ArgsDef } from "citty";

export const formatArg = {
  format: { type: "string", description: "Output format: json (or a Go-like template for inspect)", valueHint: "json" },
} as const satisfies ArgsDef;

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}
