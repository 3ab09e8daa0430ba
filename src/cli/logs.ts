import { defineCommand } from "citty";
import { call } from "../client/client.ts";
import { openPrivateLog } from "../client/trust.ts";
import { one, parseStrict } from "./_args.ts";

const args = {} as const;

export default defineCommand({
  meta: { name: "logs", description: "Print the output of a detached sandbox" },
  args,
  async run({ rawArgs }) {
    const p = parseStrict(rawArgs, args, { command: "logs" });
    const { path } = await call("logs", { name: one(p, "sandbox name or id", "logs") });
    // Checked like every file burrow opens by name: the user's, not a symbolic link.
    const fd = openPrivateLog(path);
    if (fd !== null) await Bun.write(Bun.stdout, Bun.file(fd));
  },
});
