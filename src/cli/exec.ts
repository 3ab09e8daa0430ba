import { defineCommand } from "./_command.ts";
import { foregroundLoader } from "./_load-foreground.ts";
import { call } from "../client/client.ts";
import { BurrowError } from "../errors.ts";
import { parseStrict } from "./_args.ts";
import { processArgs, processOptions, processRepeatable } from "./_process-flags.ts";

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
    // Loads while the daemon looks the sandbox up (src/cli/_load-foreground.ts).
    const foreground = foregroundLoader();
    const target = await call("enter", { name }, { onSent: foreground });
    const { runForeground, finishForeground } = await foreground();
    finishForeground(await runForeground({ ...target.enter, cwd: process.cwd() }, argv, po, async () => {}));
  },
});
