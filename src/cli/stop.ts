import { defineCommand } from "./_command.ts";
import { call } from "../client/client.ts";
import { names, parseStrict } from "./_args.ts";
import { stopTimeout, timeArg } from "./_shared.ts";

const args = { ...timeArg } as const;

export default defineCommand({
  meta: { name: "stop", description: "Stop a sandbox's processes (SIGTERM, then SIGKILL)" },
  args,
  async run({ rawArgs }) {
    const p = parseStrict(rawArgs, args, { command: "stop" });
    const timeout = stopTimeout(p);
    for (const name of names(p, "stop")) {
      await call("stop", { name, timeout });
      process.stdout.write(`${name}\n`);
    }
  },
});
