// The shared rootless namespace of bridge networks (src/net/cni/rootless-netns.ts)
// as tests see it: the containers.conf that gives it pasta, and the helper
// processes serving one context's namespace.
import { readFileSync } from "node:fs";
import type { BurrowContext } from "./context.ts";
import { listPids } from "./netns.ts";

/** podman 5's setting that gives the shared rootless namespace of bridge networks pasta instead of slirp4netns. */
export const SHARED_PASTA_CONF = '[network]\ndefault_rootless_network_cmd = "pasta"\n';

/** The pin of a context's shared rootless namespace. */
export const sharedPin = (t: BurrowContext) => `${t.dirs.runtimeDir}/rootless-netns/net`;

/** Live (not zombie) processes of `helper` whose command line names this context's shared namespace. */
export function sharedHelperPids(t: BurrowContext, helper: "pasta" | "slirp4netns"): number[] {
  const pin = sharedPin(t);
  return listPids().filter((pid) => {
    try {
      const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const zombie = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) === "Z";
      return !zombie && (argv[0] ?? "").endsWith(helper) && argv.includes(pin);
    } catch {
      return false;
    }
  });
}
