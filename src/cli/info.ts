import { defineCommand } from "citty";
import { call } from "../client/client.ts";
import { parseStrict } from "./_args.ts";
import { formatArg, printJson } from "./_shared.ts";
import { version } from "../version.ts";

const args = { ...formatArg } as const;

export default defineCommand({
  meta: { name: "info", description: "Show how burrow is set up for this user" },
  args,
  async run({ rawArgs }) {
    parseStrict(rawArgs, args, { command: "info" });
    const info = await call("info", {});
    printJson({ version: version(), ...info });
  },
});
