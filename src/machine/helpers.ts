// Where burrow finds the programs it runs, on any mainstream distribution
// (what podman does with containers.conf and its built-in lists):
//   - CNI plugins: containers.conf cni_plugin_dirs, else DEFAULT_CNI_PLUGIN_DIRS
//     (Fedora/RHEL /usr/libexec/cni, Debian/Ubuntu/Arch /usr/lib/cni, upstream /opt/cni/bin);
//   - slirp4netns: network_cmd_path, then helper_binaries_dir, then PATH;
//   - other helpers (pasta, newuidmap, ...): helper_binaries_dir, then PATH,
//     then the sbin directories a user's PATH often lacks.
import { accessSync, constants, statSync } from "node:fs";
import { readHelperConf, type HelperConf } from "./containers-conf.ts";

/** libcni's usual places, Fedora's and Debian's, in podman's order. */
export const DEFAULT_CNI_PLUGIN_DIRS = ["/usr/local/libexec/cni", "/usr/libexec/cni", "/usr/local/lib/cni", "/usr/lib/cni", "/opt/cni/bin"];

/** Appended to the PATH burrow searches and gives to CNI plugins (iptables, dnsmasq live there on Debian). */
export const SBIN_DIRS = ["/usr/sbin", "/sbin"];

const FALLBACK_PATH = "/usr/local/bin:/usr/bin:/bin";

let cached: HelperConf | null = null;
/** containers.conf, read once per process (the daemon's lifetime). */
export function helperConf(): HelperConf {
  return (cached ??= readHelperConf());
}

export function cniPluginDirs(conf: HelperConf = helperConf()): string[] {
  return conf.cniPluginDirs?.length ? conf.cniPluginDirs : DEFAULT_CNI_PLUGIN_DIRS;
}

function isExecutable(path: string): boolean {
  try {
    if (!statSync(path).isFile()) return false;
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** PATH plus the sbin directories, without duplicates. */
export function withSbin(path: string | undefined): string {
  const dirs = (path || FALLBACK_PATH).split(":").filter(Boolean);
  for (const d of SBIN_DIRS) if (!dirs.includes(d)) dirs.push(d);
  return dirs.join(":");
}

/** The directories searched for helper NAME, in order. */
export function helperSearchDirs(conf: HelperConf = helperConf(), path = process.env.PATH): string[] {
  return [...(conf.helperBinariesDir ?? []), ...withSbin(path).split(":")];
}

/** Absolute path of helper NAME, or null when it is nowhere burrow looks. */
export function findHelper(name: string, conf: HelperConf = helperConf(), path = process.env.PATH): string | null {
  if (name === "slirp4netns" && conf.networkCmdPath && isExecutable(conf.networkCmdPath)) return conf.networkCmdPath;
  for (const dir of helperSearchDirs(conf, path)) {
    const p = `${dir}/${name}`;
    if (isExecutable(p)) return p;
  }
  return null;
}

/** The CNI plugin directory holding plugin TYPE, or null. */
export function findCniPluginDir(type: string, dirs: string[] = cniPluginDirs()): string | null {
  return dirs.find((d) => isExecutable(`${d}/${type}`)) ?? null;
}
