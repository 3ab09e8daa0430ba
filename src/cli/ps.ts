import { defineCommand } from "citty";
import { call } from "../client/client.ts";
import { bool, parseStrict, str } from "./_args.ts";
import { formatArg, printJson } from "./_shared.ts";
import type { PsRow } from "../inspect/sandbox.ts";

const args = {
  all: { type: "boolean", alias: "a", description: "Show all sandboxes, not only running ones" },
  quiet: { type: "boolean", alias: "q", description: "Print only ids" },
  ...formatArg,
} as const;

function ago(iso: string): string {
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (s < 60) return `${s} seconds ago`;
  if (s < 3600) return `${Math.round(s / 60)} minutes ago`;
  return `${Math.round(s / 3600)} hours ago`;
}

export function portsText(ports: PsRow["Ports"]): string {
  return ports.map((p) => `${p.host_ip || "0.0.0.0"}:${p.host_port}->${p.container_port}/${p.protocol}`).join(", ");
}

export default defineCommand({
  meta: { name: "ps", description: "List sandboxes" },
  args,
  async run({ rawArgs }) {
    const p = parseStrict(rawArgs, args, { command: "ps" });
    const rows: PsRow[] = await call("list", { all: bool(p, "all") });
    if (str(p, "format") === "json") return printJson(rows);
    if (bool(p, "quiet")) {
      for (const r of rows) process.stdout.write(`${r.Id.slice(0, 12)}\n`);
      return;
    }
    const table = [["SANDBOX ID", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]];
    for (const r of rows) table.push([r.Id.slice(0, 12), r.Command.join(" ").slice(0, 24), ago(r.CreatedAt), r.Status, portsText(r.Ports), r.Names.join(",")]);
    const widths = table[0]!.map((_, i) => Math.max(...table.map((row) => row[i]!.length)));
    for (const row of table) process.stdout.write(`${row.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd()}\n`);
  },
});
