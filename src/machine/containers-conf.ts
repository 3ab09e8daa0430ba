// containers.conf, read the way podman reads it, for the settings that say
// where helper programs live:
//   [engine]  helper_binaries_dir = [...]   where slirp4netns, pasta, ... are looked for first
//             network_cmd_path = "..."      the slirp4netns binary
//   [network] cni_plugin_dirs = [...]       where CNI plugins are looked for
//             network_backend = "..."       cni or netavark for named networks
//             default_network, default_subnet   netavark's default network
//             network_config_dir = "..."    where podman 4-6 keep network files
//   [network] default_rootless_network_cmd  "pasta" or "slirp4netns": the rootless default
//   [network] pasta_options = [...]         pasta arguments before the user's --network pasta:...
//   [containers] host_containers_internal_ip  host.containers.internal's address ("none": no entry)
//   [containers] default_capabilities = [...] a sandboxed command's capabilities
//   [containers] log_size_max = N          a detached sandbox's log bound in bytes (-1: none)
// Files, later ones win key by key: /usr/share/containers/containers.conf,
// /etc/containers/containers.conf, /etc/containers/containers.conf.d/*.conf,
// $XDG_CONFIG_HOME (or ~/.config)/containers/containers.conf and its .d.
// CONTAINERS_CONF names the one file to read instead (podman's variable).
// Everything else in the files is ignored. Bun parses the TOML (Bun.TOML);
// valibot checks the few keys burrow reads.
import { readdirSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { isIP } from "../ip-syntax.ts";
import * as v from "valibot";
import { BurrowError } from "../errors.ts";

/** The rootless network helpers podman's default_rootless_network_cmd names. */
export const ROOTLESS_NETWORK_CMDS = ["pasta", "slirp4netns"] as const;
export type RootlessNetworkCmd = (typeof ROOTLESS_NETWORK_CMDS)[number];

const Dirs = v.array(v.pipe(v.string(), v.minLength(1)));
const ConfFile = v.looseObject({
  engine: v.optional(v.looseObject({ helper_binaries_dir: v.optional(Dirs), network_cmd_path: v.optional(v.string()) })),
  network: v.optional(
    v.looseObject({
      cni_plugin_dirs: v.optional(Dirs),
      network_backend: v.optional(v.picklist(["cni", "netavark", ""])),
      default_network: v.optional(v.pipe(v.string(), v.regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/))),
      default_subnet: v.optional(v.string()),
      network_config_dir: v.optional(v.pipe(v.string(), v.startsWith("/"))),
      default_rootless_network_cmd: v.optional(v.picklist(ROOTLESS_NETWORK_CMDS, 'accepted values are "pasta" and "slirp4netns"')),
      pasta_options: v.optional(v.array(v.string())),
    }),
  ),
  containers: v.optional(
    v.looseObject({
      default_capabilities: v.optional(v.array(v.string())),
      log_size_max: v.optional(v.pipe(v.number(), v.integer())),
      host_containers_internal_ip: v.optional(
        v.pipe(
          v.string(),
          v.check((s) => s === "" || s === "none" || isIP(s) !== 0, 'accepted values are an IPv4 or IPv6 address, or "none" for no entry'),
        ),
      ),
    }),
  ),
});

export interface HelperConf {
  helperBinariesDir?: string[];
  networkCmdPath?: string;
  cniPluginDirs?: string[];
  /** `[network] network_backend`: which backend serves named networks (src/net/registry.ts). */
  networkBackend?: "cni" | "netavark";
  /** `[network] default_network` / `default_subnet`: netavark's default network (podman's "podman", 10.88.0.0/16). */
  defaultNetwork?: string;
  defaultSubnet?: string;
  /** `[network] network_config_dir`: where podman 4-6 keep network files (wins over the default places). */
  networkConfigDir?: string;
  /** [containers] default_capabilities: a sandboxed command's capabilities before --cap-add/--cap-drop. */
  defaultCapabilities?: string[];
  /** `[containers] log_size_max`: bytes, -1 (or 0) for no bound. */
  logSizeMax?: number;
  /** `[network] default_rootless_network_cmd`: the rootless default helper. */
  defaultRootlessNetworkCmd?: RootlessNetworkCmd;
  /** `[network] pasta_options`: pasta arguments given before the user's own. */
  pastaOptions?: string[];
  /** `[containers] host_containers_internal_ip`: an address, or "none" to leave the entry out. */
  hostContainersInternalIp?: string;
  /** The files that were read, in order. */
  files: string[];
}

function confD(dir: string): string[] {
  try {
    return readdirSync(dir)
      .filter((f) => f.endsWith(".conf"))
      .sort()
      .map((f) => `${dir}/${f}`);
  } catch {
    return [];
  }
}

/** The files podman would read, in order (later wins). */
export function confFiles(env: Record<string, string | undefined> = process.env): string[] {
  if (env.CONTAINERS_CONF) return [env.CONTAINERS_CONF];
  const home = env.HOME || homedir();
  const user = `${env.XDG_CONFIG_HOME || `${home}/.config`}/containers`;
  return [
    "/usr/share/containers/containers.conf",
    "/etc/containers/containers.conf",
    ...confD("/etc/containers/containers.conf.d"),
    `${user}/containers.conf`,
    ...confD(`${user}/containers.conf.d`),
  ];
}

/** Parses one file's text; throws a BurrowError naming the file and the bad key. */
export function parseConf(text: string, file: string): Omit<HelperConf, "files"> {
  let raw: unknown;
  try {
    raw = Bun.TOML.parse(text);
  } catch (e) {
    throw new BurrowError(`${file} is not valid TOML: ${e instanceof Error ? e.message : String(e)}`, { kind: "bad-input" });
  }
  const r = v.safeParse(ConfFile, raw);
  if (!r.success) {
    const issue = r.issues[0]!;
    const path = issue.path?.map((p) => String(p.key)).join(".") ?? "";
    throw new BurrowError(`${file}: ${path}: ${issue.message}`, { kind: "bad-input" });
  }
  const out: Omit<HelperConf, "files"> = {};
  if (r.output.engine?.helper_binaries_dir) out.helperBinariesDir = r.output.engine.helper_binaries_dir;
  if (r.output.engine?.network_cmd_path) out.networkCmdPath = r.output.engine.network_cmd_path;
  if (r.output.network?.cni_plugin_dirs) out.cniPluginDirs = r.output.network.cni_plugin_dirs;
  if (r.output.network?.network_backend) out.networkBackend = r.output.network.network_backend;
  if (r.output.network?.default_network) out.defaultNetwork = r.output.network.default_network;
  if (r.output.network?.default_subnet) out.defaultSubnet = r.output.network.default_subnet;
  if (r.output.network?.network_config_dir) out.networkConfigDir = r.output.network.network_config_dir;
  if (r.output.containers?.default_capabilities) out.defaultCapabilities = r.output.containers.default_capabilities;
  if (r.output.containers?.log_size_max !== undefined) out.logSizeMax = r.output.containers.log_size_max;
  if (r.output.network?.default_rootless_network_cmd) out.defaultRootlessNetworkCmd = r.output.network.default_rootless_network_cmd;
  if (r.output.network?.pasta_options) out.pastaOptions = r.output.network.pasta_options;
  // podman: empty means "not set" (its built-in choice applies).
  if (r.output.containers?.host_containers_internal_ip) out.hostContainersInternalIp = r.output.containers.host_containers_internal_ip;
  return out;
}

const StorageFile = v.looseObject({
  storage: v.optional(v.looseObject({ graphroot: v.optional(v.string()), rootless_storage_path: v.optional(v.string()) })),
});

/**
 * Where rootless podman keeps its storage when storage.conf moves it (its
 * network files live in GRAPHROOT/networks): the user's storage.conf
 * `graphroot`, else the system's `rootless_storage_path` ($HOME, $UID and
 * $USER expanded, as containers/storage does). Undefined when neither is
 * set or a file cannot be read as TOML (podman would fail then too).
 */
export function rootlessGraphRoot(env: Record<string, string | undefined> = process.env, uid = process.getuid?.() ?? 0): string | undefined {
  const home = env.HOME || homedir();
  const read = (file: string) => {
    try {
      const r = v.safeParse(StorageFile, Bun.TOML.parse(readFileSync(file, "utf8")));
      return r.success ? r.output.storage : undefined;
    } catch {
      return undefined;
    }
  };
  const user = read(`${env.XDG_CONFIG_HOME || `${home}/.config`}/containers/storage.conf`);
  if (user?.graphroot?.startsWith("/")) return user.graphroot;
  const system = read(env.CONTAINERS_STORAGE_CONF || "/etc/containers/storage.conf")?.rootless_storage_path;
  if (!system) return undefined;
  const expanded = system
    .replaceAll("$HOME", home)
    .replaceAll("$UID", String(uid))
    .replaceAll("$USER", env.USER ?? "");
  return expanded.startsWith("/") ? expanded : undefined;
}

/** Reads and merges every containers.conf there is; a missing file is no error. */
export function readHelperConf(files: string[] = confFiles()): HelperConf {
  const merged: HelperConf = { files: [] };
  for (const file of files) {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch {
      continue;
    }
    merged.files.push(file);
    Object.assign(merged, parseConf(text, file));
  }
  return merged;
}
