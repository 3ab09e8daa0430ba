import { defineCommand } from "citty";
import { call } from "../client/client.ts";
import { BurrowError } from "../errors.ts";
import { parseStrict } from "./_args.ts";
import { spawnEnter, waitForeground } from "./_run-child.ts";

const args = {} as const;

export default defineCommand({
  meta: { name: "exec", description: "Run a command in a running sandbox: burrow exec NAME -- COMMAND..." },
  args,
  async run({ rawArgs }) {
    const p = parseStrict(rawArgs, args, { stopAtPositional: true, command: "exec" });
    const [name, ...rest] = p.rest;
    const argv = rest[0] === "--" ? rest.slice(1) : rest;
    if (!name || !argv.length) throw new BurrowError(`"burrow exec" needs a sandbox and a command: burrow exec NAME -- COMMAND [ARG...]`, { kind: "bad-input" });
    const target = await call("enter", { name });
    const child = spawnEnter({ ...target.enter, cwd: process.cwd() }, argv);
    process.exitCode = await waitForeground(child);
  },
});
