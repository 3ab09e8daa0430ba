import { defineCommand } from "./_command.ts";
import { call } from "../client/client.ts";
import { names, parseStrict } from "./_args.ts";

const args = {} as const;

export default defineCommand({
  meta: { name: "start", description: "Start exited sandboxes again (namespaces, network and ports from their recorded spec)" },
  args,
  async run({ rawArgs }) {
    const p = parseStrict(rawArgs, args, { command: "start" });
    for (const name of names(p, "start")) {
      await call("start", { name });
      process.stdout.write(`${name}\n`);
    }
  },
});
