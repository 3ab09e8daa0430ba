import { defineCommand } from "./_command.ts";
import { call } from "../client/client.ts";
import { bool, parseStrict, str } from "./_args.ts";
import { goView, render } from "./_format.ts";
import { templateFormatArg } from "./_shared.ts";

const args = {
  ...templateFormatArg,
  "no-stream": { type: "boolean", description: "Print once and exit (the default when stdout is not a terminal)" },
  noheading: { type: "boolean", description: "Leave out the header line of a table" },
} as const;

interface Stat {
  ID: string;
  Name: string;
  PIDs: number;
  MemUsage: number;
  NetInput: number;
  NetOutput: number;
}

/** go-units HumanSize, as podman prints sizes: decimal units, 3 significant digits. */
export function human(n: number): string {
  const units = ["B", "kB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i++;
  }
  return `${Number(n.toPrecision(3))}${units[i]}`;
}

const TABLE = "table {{.ID}}\t{{.Name}}\t{{.MemUsage}}\t{{.NetIO}}\t{{.PIDs}}";

export default defineCommand({
  meta: { name: "stats", description: "Show sandboxes' network I/O, memory and process count, refreshed every second on a terminal" },
  args,
  async run({ rawArgs }) {
    const p = parseStrict(rawArgs, args, { command: "stats" });
    const format = str(p, "format") ?? "table";
    // Like podman stats: refresh in place on a terminal; once when piped or with --no-stream.
    const live = !bool(p, "no-stream") && process.stdout.isTTY === true;
    for (;;) {
      const stats = (await call("stats", { names: p.positionals })) as Stat[];
      let text: string;
      if (format === "json") text = `${JSON.stringify(stats, null, 2)}\n`;
      else {
        const rows = stats.map((s) =>
          goView(
            {
              ID: s.ID.slice(0, 12),
              Name: s.Name,
              MemUsage: human(s.MemUsage),
              MemUsageBytes: s.MemUsage,
              NetIO: `${human(s.NetInput)} / ${human(s.NetOutput)}`,
              NetInput: s.NetInput,
              NetOutput: s.NetOutput,
              PIDs: s.PIDs,
            },
            "stats.Sandbox",
          ),
        );
        text = render(format, rows, { defaultTable: TABLE, headers: { PIDs: "PIDS", NetIO: "NET IO" }, noHeading: bool(p, "noheading") });
      }
      // Home the cursor and clear the screen, then draw: one frame per second.
      process.stdout.write(live && format !== "json" ? `\x1b[H\x1b[2J${text}` : text);
      if (!live) return;
      await Bun.sleep(1000);
    }
  },
});
