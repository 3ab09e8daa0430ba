import { defineCommand } from "citty";
import { call } from "../client/client.ts";
import { bool, parseStrict, str } from "./_args.ts";
import { formatArg, printJson } from "./_shared.ts";

const args = {
  ...formatArg,
  "no-stream": { type: "boolean", description: "Print once and exit" },
} as const;

interface Stat {
  ID: string;
  Name: string;
  PIDs: number;
  MemUsage: number;
  NetInput: number;
  NetOutput: number;
}

function human(n: number): string {
  const units = ["B", "kB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i++;
  }
  return `${n.toFixed(i ? 1 : 0)}${units[i]}`;
}

export default defineCommand({
  meta: { name: "stats", description: "Show sandboxes' network I/O, memory and process count" },
  args,
  async run({ rawArgs }) {
    const p = parseStrict(rawArgs, args, { command: "stats" });
    for (;;) {
      const stats = (await call("stats", { names: p.positionals })) as Stat[];
      if (str(p, "format") === "json") printJson(stats);
      else {
        const rows = [["ID", "NAME", "MEM USAGE", "NET IO", "PIDS"], ...stats.map((s) => [s.ID.slice(0, 12), s.Name, human(s.MemUsage), `${human(s.NetInput)} / ${human(s.NetOutput)}`, String(s.PIDs)])];
        const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
        for (const r of rows) process.stdout.write(`${r.map((c, i) => c.padEnd(w[i]!)).join("  ").trimEnd()}\n`);
      }
      if (bool(p, "no-stream")) return;
      await Bun.sleep(1000);
    }
  },
});
