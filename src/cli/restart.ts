import { defineCommand } from "./_command.ts";
import { call } from "../client/client.ts";
import { names, parseStrict } from "./_args.ts";
import { stopTimeout, timeArg } from "./_shared.ts";

const args = { ...timeArg } as const;

export default defineCommand({
  meta: { name: "restart", description: "Restart sandboxes' commands in the same namespaces (IP, MAC and ports stay)" },
  args,
  async run({ rawArgs }) {
    const p = parseStrict(rawArgs, args, { command: "restart" });
    const timeout = stopTimeout(p);
    for (const name of names(p, "restart")) {
      const r = await call("restart", { name, timeout });
      process.stdout.write(`${r.id}\n`);
    }
  },
});
