// `burrow system ...`: podman's group for the engine's own upkeep. Only
// parses and prints; the work is in src/client/recover.ts.
import { defineCommand } from "./_command.ts";
import { recoverState } from "../client/recover.ts";
import { parseStrict, str } from "./_args.ts";
import { formatArg, printJson } from "./_shared.ts";
import { BurrowError } from "../errors.ts";

const recoverArgs = { ...formatArg } as const;

const recover = defineCommand({
  meta: {
    name: "recover",
    description: "Set a damaged state database aside and stop the sandboxes burrow no longer has a record of",
  },
  args: recoverArgs,
  async run({ rawArgs }) {
    const p = parseStrict(rawArgs, recoverArgs, { command: "system recover" });
    if (p.positionals.length) throw new BurrowError(`"burrow system recover" takes no arguments (got "${p.positionals[0]}")`, { kind: "bad-input" });
    const r = await recoverState();
    if (str(p, "format") === "json") return printJson(r);
    if (!r.setAside) process.stdout.write(`state database: ${r.health}\n`);
    else {
      process.stdout.write(`state database: ${r.health}\n`);
      if (r.stoppedDaemon) process.stdout.write(`stopped the daemon (pid ${r.stoppedDaemon}) that still had it open\n`);
      process.stdout.write(`set it aside as ${r.setAside} (kept for you; burrow no longer reads it)\n`);
      const kept = r.salvaged?.sandboxes ?? 0;
      if (kept) process.stdout.write(`kept the records of ${kept} sandbox${kept === 1 ? "" : "es"} that could still be read (events are not kept)\n`);
      else if (r.salvaged?.lost) process.stdout.write(`no sandbox record could be read from it (${r.salvaged.lost})\n`);
    }
    for (const id of r.stopped) process.stdout.write(`stopped sandbox ${id}: no record of it was left\n`);
    if (!r.setAside && !r.stopped.length) process.stdout.write("nothing to recover\n");
  },
});

export default defineCommand({
  meta: { name: "system", description: "burrow's own upkeep" },
  subCommands: { recover },
});
