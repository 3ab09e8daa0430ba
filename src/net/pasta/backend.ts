// The pasta network backend (passt's namespace mode): one pasta per sandbox,
// which also publishes the sandbox's ports itself (-t/-u), so its port
// driver only chooses host ports up front. Daemon main thread.
import { mkdirSync, rmSync } from "node:fs";
import { dirname } from "node:path";
import type { NetworkBackend } from "../backend.ts";
import { firstHostIPv4 } from "../../dns/hosts.ts";
import type { NetworkModeOf } from "../mode.ts";
import { helperConf } from "../../machine/helpers.ts";
import { parsePastaOptionsWithConf, type PastaOptions } from "./options.ts";
import { isPasta, pastaHostAddress, pastaNameservers, pastaProbeCache, probePasta, startPasta } from "./process.ts";

export interface PastaRecord {
  pid: number;
  /** pasta's control socket (--conf-path), where the installed pasta has one: pesto adds and removes ports through it. */
  control?: string;
}

/** containers.conf pasta_options, then the user's `pasta:...` options (podman's order). */
function optionsOf(mode: NetworkModeOf<"pasta">): PastaOptions {
  return parsePastaOptionsWithConf(helperConf().pastaOptions ?? [], mode.options ? mode.options.split(",") : []);
}

export const pastaBackend: NetworkBackend<"pasta", PastaRecord> = {
  kind: "pasta",
  etc: "network",
  bridge: false,
  entersNetns: true,
  async plan(mode, ctx) {
    optionsOf(mode);
    await probePasta(undefined, pastaProbeCache(ctx.paths));
    return { newNet: true };
  },
  // pasta binds the host ports itself: they only need choosing up front.
  ports: () => ({ driver: "pasta" }),
  async setup(mode, ctx) {
    const options = optionsOf(mode);
    const features = await probePasta(undefined, pastaProbeCache(ctx.paths));
    // Short: a unix socket path has room for 107 bytes; named as slirp4netns's API socket is.
    const control = features.confPath ? `${ctx.paths.runtimeDir}/api/${ctx.sandbox.id.slice(0, 16)}.pasta` : undefined;
    if (control) {
      mkdirSync(dirname(control), { recursive: true, mode: 0o700 });
      rmSync(control, { force: true });
    }
    const track = ctx.helpers?.intend("pasta");
    const p = await startPasta({
      track,
      netnsPath: ctx.netns,
      options,
      features,
      ports: ctx.sandbox.runtime.ports ?? [],
      logPath: `${ctx.dir}/pasta.log`,
      pidPath: `${ctx.dir}/pasta.pid`,
      controlPath: control,
      // A logout removes the runtime directory and the netns pin with it,
      // which pasta takes as its signal to quit: the sandbox would lose its
      // way out and its ports while its command runs on (slirp4netns, which
      // watches no file, keeps going). burrow stops this pasta itself
      // (teardown below, the helper ledger after a crash).
      outlivePin: true,
    });
    const record: PastaRecord = { pid: p.pid, control };
    // pasta gives the sandbox the host's own address: /etc/hosts names the
    // sandbox there, as podman does.
    const address = options.addresses[0] ?? firstHostIPv4() ?? undefined;
    return {
      record,
      address,
      hostsAddress: address,
      nameservers: pastaNameservers(options, features),
      hostContainersInternal: pastaHostAddress(options, features) ?? undefined,
    };
  },
  async teardown({ pid, control }) {
    // pasta killed leaves its control socket behind.
    if (control) rmSync(control, { force: true });
    if (pid > 0 && isPasta(pid)) {
      try {
        process.kill(pid, "SIGKILL");
      } catch (e) {
        return [e as Error];
      }
    }
    return [];
  },
  healthy: ({ pid }) => isPasta(pid),
  splicesLoopback(mode) {
    const { args } = optionsOf(mode);
    return args.some((a, i) => (a === "--tcp-ns" || a === "--udp-ns") && args[i + 1] !== "none");
  },
};
