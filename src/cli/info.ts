import { defineCommand } from "./_command.ts";
import { call } from "../client/client.ts";
import { defaultRootlessBackend, helpers, idRanges, kernelFeatures, kernelRelease } from "../inspect/host.ts";
import { version } from "../version.ts";
import { parseStrict, str } from "./_args.ts";
import { goView, render } from "./_format.ts";
import { templateFormatArg, printJson } from "./_shared.ts";

const args = { ...templateFormatArg } as const;

/** Which backend `run` uses without --network, and why (the daemon's defaultNetwork rule). */
function defaultBackend(rootless: boolean) {
  if (!rootless) return { Backend: "bridge", Why: 'rootful: sandboxes join the default bridge network (CNI, network "burrow"), as podman\'s rootful default' };
  const chosen = defaultRootlessBackend();
  return { Backend: chosen.mode, Why: chosen.why };
}

export default defineCommand({
  meta: { name: "info", description: "Show how burrow is set up for this user: versions, helpers, default backend, id ranges, kernel features" },
  args,
  async run({ rawArgs }) {
    const p = parseStrict(rawArgs, args, { command: "info" });
    const format = str(p, "format");
    const daemon = (await call("info", {})) as {
      pid: number;
      paths: { rootless: boolean } & Record<string, unknown>;
      session: { id?: string; enter?: { user?: string } };
      sandboxes: unknown;
      networkBackend?: { kind: string; why: string };
      rootlessNetns?: { helper: string; pid: number | null; why: string } | null;
      userNamespace?: string;
    };
    const rootless = daemon.paths.rootless;
    const holderPid = Number(/^\/proc\/(\d+)\//.exec(daemon.session.enter?.user ?? "")?.[1]) || undefined;
    const uid = process.getuid?.() ?? 0;
    const found = helpers();
    const info = goView(
      {
        Version: { Version: version().version, Commit: version().commit },
        Host: {
          Rootless: rootless,
          Uid: uid,
          Arch: process.arch,
          Kernel: kernelRelease(),
          IdMappings: idRanges(uid, rootless ? holderPid : undefined),
          // Rootless: "podman" when the session joined podman 5's user namespace (its bridges are podman's), else "burrow".
          UserNamespace: daemon.userNamespace,
          KernelFeatures: kernelFeatures(),
        },
        Network: {
          ...defaultBackend(rootless),
          // podman's host.networkBackend: which backend serves named networks (`--network NAME`, `bridge`), and why.
          NamedNetworks: daemon.networkBackend ? { Backend: daemon.networkBackend.kind, Why: daemon.networkBackend.why } : undefined,
          // Rootless: what connects the shared namespace bridge networks live in (podman's host.rootlessNetworkCmd).
          RootlessNetns: daemon.rootlessNetns
            ? { Helper: daemon.rootlessNetns.helper, Pid: daemon.rootlessNetns.pid ?? undefined, Why: daemon.rootlessNetns.why }
            : undefined,
        },
        Helpers: found.found,
        MissingHelpers: found.missing,
        Daemon: { Pid: daemon.pid, Paths: daemon.paths, Session: daemon.session, Sandboxes: daemon.sandboxes },
      },
      "info.Info",
      ["Paths", "Session"],
    );
    if (!format || format === "json") return printJson(info);
    process.stdout.write(render(format, [info]));
  },
});
