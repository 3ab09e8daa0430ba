import { defineCommand } from "citty";
import { existsSync } from "node:fs";
import { call } from "../client/client.ts";
import { one, parseStrict } from "./_args.ts";

const args = {} as const;

export default defineCommand({
  meta: { name: "logs", description: "Print the output of a detached sandbox" },
  args,
  async run({ rawArgs }) {
    const p = parseStrict(rawArgs, args, { command: "logs" });
    const { path } = await call("logs", { name: one(p, "sandbox name or id", "logs") });
    if (existsSync(path)) await Bun.write(Bun.stdout, Bun.file(path));
  },
});
