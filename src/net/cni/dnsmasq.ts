// dnsname's dnsmasq, as burrow sees it from outside. The dnsname CNI plugin
// starts one dnsmasq per network on the ADD that finds none, keeps its
// config, hosts file (addnhosts) and pid file in
// $XDG_RUNTIME_DIR/containers/cni/dnsname/NETWORK/, HUPs it on every later
// ADD and DEL (dnsmasq re-reads addnhosts on SIGHUP), and stops it on the DEL
// that empties addnhosts. burrow chooses that directory (the plugins'
// XDG_RUNTIME_DIR) and records each dnsmasq in the helper ledger
// (src/state/helpers.ts); nothing here writes dnsname's files.
//
// Where (XDG_RUNTIME_DIR for the plugins):
//   rootful   the runtime dir (/run/burrow): apart from podman's dnsmasq for
//             a network of the same name under /run/containers.
//   rootless  STATE_DIR/cni/run: a logout's rm -rf of $XDG_RUNTIME_DIR must
//             not take the files from under a running dnsmasq (names of
//             older sandboxes would stop resolving). Files of a namespace
//             that no longer exists are removed when a new one is made
//             (rootless-netns.ts), so a pid file never outlives its dnsmasq
//             across a reboot.
//
// Daemon main thread, session namespaces (the dnsmasq processes' own pid
// namespace: the holder makes no pid namespace).
import { readFileSync, readdirSync, rmSync } from "node:fs";
import type { Paths } from "../../paths.ts";
import { startTimeOf } from "../../sys/processes.ts";

/** The helper ledger's owner of a network's dnsmasq: live while a sandbox is on the network. */
export function dnsmasqOwner(network: string): string {
  return `dnsname:${network}`;
}

/** The network a ledger owner names, or null when it is not a dnsmasq's. */
export function dnsmasqNetwork(owner: string): string | null {
  return owner.startsWith("dnsname:") ? owner.slice("dnsname:".length) : null;
}

/** The XDG_RUNTIME_DIR the plugins get: dnsname keeps its files below it. */
export function dnsnameRuntimeDir(paths: Paths): string {
  return paths.rootless ? `${paths.stateDir}/cni/run` : paths.runtimeDir;
}

/** dnsname's directory for every network (its own layout under XDG_RUNTIME_DIR). */
export function dnsnameRoot(paths: Paths): string {
  return `${dnsnameRuntimeDir(paths)}/containers/cni/dnsname`;
}

/** dnsname's directory for one network. */
export function dnsnameDir(paths: Paths, network: string): string {
  return `${dnsnameRoot(paths)}/${network}`;
}

function read(path: string): string | null {
  try {
    return readFileSync(path, "latin1");
  } catch {
    return null;
  }
}

/**
 * The dnsmasq serving `network`, or null: the pid in dnsname's pid file,
 * taken only when that process is alive (not a zombie), is dnsmasq, and was
 * started with this network's config file (a pid reused by anything else
 * is never named).
 */
export function dnsmasqOf(paths: Paths, network: string): { pid: number; startTime: string } | null {
  const dir = dnsnameDir(paths, network);
  const text = read(`${dir}/pidfile`);
  if (text === null || !/^\s*\d{1,9}\s*$/.test(text)) return null;
  const pid = Number(text.trim());
  if (pid <= 1) return null;
  if (read(`/proc/${pid}/comm`)?.trim() !== "dnsmasq") return null;
  const argv = (read(`/proc/${pid}/cmdline`) ?? "").split("\0");
  if (!argv.includes(`--conf-file=${dir}/dnsmasq.conf`)) return null;
  const startTime = startTimeOf(pid);
  return startTime ? { pid, startTime } : null;
}

/** Networks that have a dnsname directory. */
export function dnsnameNetworks(paths: Paths): string[] {
  try {
    return readdirSync(dnsnameRoot(paths));
  } catch {
    return [];
  }
}

/**
 * Stops `network`'s dnsmasq (checked as in dnsmasqOf) and removes its
 * dnsname directory, as dnsname's own last DEL does: for a dnsmasq that no
 * sandbox uses any more (a DEL that could not run, or ran without its
 * cached result, left it running with stale names).
 */
export function stopDnsmasq(paths: Paths, network: string): number | null {
  const running = dnsmasqOf(paths, network);
  if (running) {
    try {
      process.kill(running.pid, "SIGKILL");
    } catch {}
  }
  rmSync(dnsnameDir(paths, network), { recursive: true, force: true });
  return running?.pid ?? null;
}
