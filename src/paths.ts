// Where burrow keeps things. Computed once by the CLI and handed to the
// daemon through the environment (the daemon runs as uid 0 of the holder's
// user namespace, so it cannot tell rootless from rootful by its own uid).
import type * as v from "valibot";
import { BurrowError } from "./errors.ts";
import { PathsMessage, parseMessage } from "./messages.ts";
import { getuid } from "./sys/proc.ts";
import { nodeOs } from "./lazy-node.ts";

export type Paths = v.InferOutput<typeof PathsMessage>;

/** podman's rootful netavark run dir (aardvark-dns's config, ipam.db): burrow's too, rootful. */
export const PODMAN_NETAVARK_RUN_DIR = "/run/containers/networks";

export function controlSocket(p: Paths): string {
  return `${p.runtimeDir}/control.sock`;
}
/** Where every sandbox's namespace pins live, one directory each. */
export function pinsRoot(p: Paths): string {
  return `${p.runtimeDir}/pins`;
}
export function pinDir(p: Paths, id: string): string {
  return `${pinsRoot(p)}/${id}`;
}
/** What every sandbox hides (and unmounts everything below) in its mount namespace: the runtime and state dirs. */
export function hiddenFromSandboxes(p: Paths): string[] {
  return [p.runtimeDir, p.stateDir];
}
/** Where the CLI makes the FIFO a foreground run's enter step reads its options from (CreateRequest.enterFifo). */
export function enterFifoDir(p: Paths): string {
  return `${p.runtimeDir}/enter`;
}
export function enterFifo(p: Paths, requestId: string): string {
  return `${enterFifoDir(p)}/${requestId}`;
}
export function sandboxDir(p: Paths, id: string): string {
  return `${p.runtimeDir}/sandboxes/${id}`;
}
/**
 * A sandbox's files that must outlive a logout (its log): in the state dir,
 * as podman keeps a container's log in its storage, not under
 * $XDG_RUNTIME_DIR, which systemd-logind removes.
 */
export function sandboxStateDir(p: Paths, id: string): string {
  return `${p.stateDir}/sandboxes/${id}`;
}
/** Where a sandbox's detached output goes: the path its row names (older builds: in the runtime dir). */
export function sandboxLog(p: Paths, s: { id: string; runtime: { log?: string } }): string {
  return s.runtime.log ?? `${sandboxDir(p, s.id)}/log`;
}

/** Resolves paths in the CLI (host namespaces). */
export function resolvePaths(env: Record<string, string | undefined> = process.env): Paths {
  if (env.BURROW_PATHS) return parseMessage(PathsMessage, env.BURROW_PATHS, "BURROW_PATHS");
  const uid = getuid();
  const rootless = uid !== 0;
  const home = env.HOME || nodeOs().homedir();
  let runtimeDir = env.BURROW_RUNTIME_DIR;
  if (!runtimeDir) {
    if (!rootless) runtimeDir = "/run/burrow";
    else if (env.XDG_RUNTIME_DIR) runtimeDir = `${env.XDG_RUNTIME_DIR}/burrow`;
    else
      throw new BurrowError(
        `XDG_RUNTIME_DIR is not set: burrow needs a private runtime directory. ` +
          `Create one and export it: sudo install -d -m 0700 -o ${uid} /run/user/${uid} && export XDG_RUNTIME_DIR=/run/user/${uid}`,
        { kind: "setup" },
      );
  }
  const stateDir = env.BURROW_STATE_DIR || (rootless ? `${env.XDG_DATA_HOME || `${home}/.local/share`}/burrow` : "/var/lib/burrow");
  const cniConfigDir = env.BURROW_CNI_CONFIG_DIR || (rootless ? `${env.XDG_CONFIG_HOME || `${home}/.config`}/cni/net.d` : "/etc/cni/net.d");
  // podman's places (docs/netavark.md), so both see the same networks.
  // containers.conf network_config_dir and storage.conf's graphroot are not
  // read here (the CLI's start stays file-free): docs/netavark.md.
  const networksDir =
    env.BURROW_NETWORKS_DIR || (rootless ? `${env.XDG_DATA_HOME || `${home}/.local/share`}/containers/storage/networks` : "/etc/containers/networks");
  // Rootful: podman's, so a podman container and a sandbox on one network
  // share one aardvark-dns. Rootless: burrow's own namespace runs its own
  // bridges, so its own directory, in the state dir (a logout keeps it).
  const netavarkDir = env.BURROW_NETAVARK_DIR || (rootless ? `${stateDir}/netavark` : PODMAN_NETAVARK_RUN_DIR);
  return { rootless, uid, runtimeDir, stateDir, cniConfigDir, networksDir, netavarkDir };
}
