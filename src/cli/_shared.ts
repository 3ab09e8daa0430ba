// Flags shared by several commands (STYLE.md #5).
import type { ArgsDef } from "citty";

export const formatArg = {
  format: { type: "string", description: "Output format: json", valueHint: "json" },
} as const satisfies ArgsDef;

/** --format for commands that print through the Go template engine (src/format). */
export const templateFormatArg = {
  format: {
    type: "string",
    description: "Output format: json, a Go template ('{{.Name}}'), or 'table TEMPLATE' with a header row",
    valueHint: "json|TEMPLATE",
  },
} as const satisfies ArgsDef;

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}
