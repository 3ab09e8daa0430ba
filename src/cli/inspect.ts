import { defineCommand } from "citty";
import { call } from "../client/client.ts";
import { BurrowError } from "../errors.ts";
import { parseStrict, str } from "./_args.ts";
import { formatArg, printJson } from "./_shared.ts";
import { renderTemplate } from "./_template.ts";

const args = { ...formatArg } as const;

export default defineCommand({
  meta: { name: "inspect", description: "Show a sandbox's configuration and state as JSON (podman's shape)" },
  args,
  async run({ rawArgs }) {
    const p = parseStrict(rawArgs, args, { command: "inspect" });
    if (!p.positionals.length) throw new BurrowError(`"burrow inspect" needs at least one sandbox name or id`, { kind: "bad-input" });
    const views = [];
    for (const name of p.positionals) views.push(await call("inspect", { name }));
    const format = str(p, "format");
    if (format && format !== "json") {
      for (const v of views) process.stdout.write(`${renderTemplate(format, v)}\n`);
      return;
    }
    printJson(views);
  },
});
