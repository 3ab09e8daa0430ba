import { defineCommand } from "./_command.ts";
import { call } from "../client/client.ts";
import { BurrowError } from "../errors.ts";
import { quote } from "../quote.ts";
import { names, parseStrict, str } from "./_args.ts";
import { formatArg, printJson } from "./_shared.ts";

const args = { ...formatArg } as const;

export default defineCommand({
  meta: { name: "wait", description: "Wait until sandboxes exit for good and print their exit codes" },
  args,
  async run({ rawArgs }) {
    const p = parseStrict(rawArgs, args, { command: "wait" });
    const format = str(p, "format");
    if (format !== undefined && format !== "json") throw new BurrowError(`invalid --format ${quote(format)}: wait accepts only json`, { kind: "bad-input" });
    // Like podman: one exit code per line, in the order given.
    const results = await Promise.all(names(p, "wait").map((name) => call("wait", { name })));
    if (format === "json") printJson(results.map((r) => ({ Id: r.id, Name: r.name, ExitCode: r.exitCode })));
    else for (const r of results) process.stdout.write(`${r.exitCode}\n`);
  },
});
