import { defineCommand } from "./_command.ts";
import { paths } from "../client/client.ts";
import { BurrowError } from "../errors.ts";
import { ensureHolder } from "../userns/session.ts";
import { parseStrict } from "./_args.ts";
import { catchSignals, prepareEnterHelper, spawnEnter, waitForeground } from "../client/enter.ts";

const args = {} as const;

export default defineCommand({
  meta: { name: "unshare", description: "Run a command in the rootless session's user and mount namespaces (like podman unshare)" },
  args,
  async run({ rawArgs }) {
    const p = parseStrict(rawArgs, args, { stopAtPositional: true, command: "unshare" });
    const argv = p.rest.length ? p.rest : [process.env.SHELL || "/bin/sh"];
    const pp = paths();
    if (!pp.rootless) throw new BurrowError(`"burrow unshare" is for rootless use: as root, run the command directly`, { kind: "bad-input" });
    const { ensureDaemon } = await import("../client/start-daemon.ts");
    await ensureDaemon();
    const h = await ensureHolder(pp);
    await prepareEnterHelper();
    const signals = catchSignals();
    let child: Bun.Subprocess;
    try {
      child = spawnEnter({ session: { user: `/proc/${h.pid}/ns/user`, mnt: `/proc/${h.pid}/ns/mnt` }, cwd: process.cwd() }, argv);
    } catch (e) {
      signals.release();
      throw e;
    }
    process.exitCode = await waitForeground(child, signals);
  },
});
