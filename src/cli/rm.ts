import { defineCommand } from "./_command.ts";
import { call } from "../client/client.ts";
import { BurrowError } from "../errors.ts";
import { bool, parseStrict } from "./_args.ts";

const args = {
  force: { type: "boolean", alias: "f", description: "Kill a running sandbox before removing it" },
  all: { type: "boolean", alias: "a", description: "Remove every sandbox (with -f, running ones too); those that joined another's network go first" },
  depend: { type: "boolean", description: "Also remove the sandboxes that joined this one's network (--network container:NAME), first" },
} as const;

export default defineCommand({
  meta: { name: "rm", description: "Remove sandboxes" },
  args,
  async run({ rawArgs }) {
    const p = parseStrict(rawArgs, args, { command: "rm" });
    const all = bool(p, "all");
    if (all && p.positionals.length) throw new BurrowError(`"burrow rm --all" takes no sandbox names (got "${p.positionals[0]}")`, { kind: "bad-input" });
    if (!all && !p.positionals.length) throw new BurrowError(`"burrow rm" needs at least one sandbox name or id, or --all`, { kind: "bad-input" });
    // podman's rm -a: every sandbox there is now, by id, each with its
    // dependants first (the daemon orders them: --depend), so a sandbox
    // others joined does not refuse.
    const names = all ? (await call("list", { all: true })).map((s) => s.Id) : p.positionals;
    const depend = all || bool(p, "depend");
    const gone = new Set<string>();
    // Like podman: every name is tried; each failure is reported, the last decides the status.
    let failed: unknown = null;
    for (const name of names) {
      if (gone.has(name)) continue; // removed already as another's dependant
      try {
        const r = await call("rm", { name, force: bool(p, "force"), depend });
        for (const removed of r.removed ?? [r]) {
          gone.add(removed.id);
          process.stdout.write(`${removed.id}\n`);
        }
      } catch (e) {
        if (failed) process.stderr.write(`Error: ${(failed as Error).message}\n`);
        failed = e;
      }
    }
    if (failed) throw failed;
  },
});
