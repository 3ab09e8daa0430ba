import { defineCommand } from "./_command.ts";
import { call } from "../client/client.ts";
import { BurrowError } from "../errors.ts";
import { parseStrict } from "./_args.ts";
import { processArgs, processOptions, processRepeatable } from "./_process-flags.ts";
import { runForeground } from "./_foreground.ts";
import { prepareEnterHelper } from "../client/enter.ts";

const args = { ...processArgs } as const;

export default defineCommand({
  meta: { name: "exec", description: "Run a command in a running sandbox: burrow exec [-it] [-e K=V] [-w DIR] [-u USER] NAME -- COMMAND..." },
  args,
  async run({ rawArgs }) {
    const p = parseStrict(rawArgs, args, { repeatable: processRepeatable, stopAtPositional: true, command: "exec" });
    const [name, ...rest] = p.rest;
    const argv = rest[0] === "--" ? rest.slice(1) : rest;
    if (!name || !argv.length)
      throw new BurrowError(`"burrow exec" needs a sandbox and a command: burrow exec NAME -- COMMAND [ARG...]`, { kind: "bad-input" });
    const po = processOptions(p, { detach: false, command: "exec" });
    // The enter helper loads while the daemon looks the sandbox up.
    void prepareEnterHelper();
    const target = await call("enter", { name });
    process.exitCode = await runForeground({ ...target.enter, cwd: process.cwd() }, argv, po, async () => {});
  },
});
