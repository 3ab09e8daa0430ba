// Flags shared by several commands (STYLE.md #5).
import type { ArgsDef } from "citty";
import { BurrowError } from "../errors.ts";
import { quote } from "../quote.ts";
import { str, type Parsed } from "./_args.ts";

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

/** -t/--time of stop and restart: seconds between SIGTERM and SIGKILL. */
export const timeArg = {
  time: { type: "string", alias: "t", description: "Seconds to wait after SIGTERM before SIGKILL (default 10)" },
} as const satisfies ArgsDef;

/** The --time value in seconds (default 10), or a one-line refusal. */
export function stopTimeout(p: Parsed): number {
  const t = str(p, "time") ?? "10";
  if (!/^\d+$/.test(t)) throw new BurrowError(`invalid --time ${quote(t)}: give a whole number of seconds`, { kind: "bad-input" });
  return Number(t);
}
