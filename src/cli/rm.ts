import { defineCommand } from "citty";
import { call } from "../client/client.ts";
import { BurrowError } from "../errors.ts";
import { bool, parseStrict } from "./_args.ts";

const args = {
  force: { type: "boolean", alias: "f", description: "Kill a running sandbox before removing it" },
  all: { type: "boolean", alias: "a", description: "Remove every sandbox (with -f, running ones too)" },
} as const;

export default defineCommand({
  meta: { name: "rm", description: "Remove sandboxes" },
  args,
  async run({ rawArgs }) {
    const p = parseStrict(rawArgs, args, { command: "rm" });
    const all = bool(p, "all");
    if (all && p.positionals.length) throw new BurrowError(`"burrow rm --all" takes no sandbox names (got "${p.positionals[0]}")`, { kind: "bad-input" });
    if (!all && !p.positionals.length) throw new BurrowError(`"burrow rm" needs at least one sandbox name or id, or --all`, { kind: "bad-input" });
    // podman's rm -a: every sandbox there is now, by id.
    const names = all ? (await call("list", { all: true })).map((s) => s.Id) : p.positionals;
    // Like podman: every name is tried; each failure is reported, the last decides the status.
    let failed: unknown = null;
    for (const name of names) {
      try {
        const r = await call("rm", { name, force: bool(p, "force") });
        process.stdout.write(`${r.id}\n`);
      } catch (e) {
        if (failed) process.stderr.write(`Error: ${(failed as Error).message}\n`);
        failed = e;
      }
    }
    if (failed) throw failed;
  },
});
