import { defineCommand } from "citty";
import { call } from "../client/client.ts";
import { BurrowError } from "../errors.ts";
import { parseStrict } from "./_args.ts";

const args = {} as const;

export default defineCommand({
  meta: { name: "start", description: "Start exited sandboxes again (namespaces, network and ports from their recorded spec)" },
  args,
  async run({ rawArgs }) {
    const p = parseStrict(rawArgs, args, { command: "start" });
    if (!p.positionals.length) throw new BurrowError(`"burrow start" needs at least one sandbox name or id`, { kind: "bad-input" });
    for (const name of p.positionals) {
      await call("start", { name });
      process.stdout.write(`${name}\n`);
    }
  },
});
