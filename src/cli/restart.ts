import { defineCommand } from "citty";
import { call } from "../client/client.ts";
import { BurrowError } from "../errors.ts";
import { quote } from "../quote.ts";
import { parseStrict, str } from "./_args.ts";

const args = { time: { type: "string", alias: "t", description: "Seconds to wait after SIGTERM before SIGKILL (default 10)" } } as const;

export default defineCommand({
  meta: { name: "restart", description: "Restart sandboxes' commands in the same namespaces (IP, MAC and ports stay)" },
  args,
  async run({ rawArgs }) {
    const p = parseStrict(rawArgs, args, { command: "restart" });
    const t = str(p, "time") ?? "10";
    if (!/^\d+$/.test(t)) throw new BurrowError(`invalid --time ${quote(t)}: give a whole number of seconds`, { kind: "bad-input" });
    if (!p.positionals.length) throw new BurrowError(`"burrow restart" needs at least one sandbox name or id`, { kind: "bad-input" });
    for (const name of p.positionals) {
      const r = await call("restart", { name, timeout: Number(t) });
      process.stdout.write(`${r.id}\n`);
    }
  },
});
