// What `burrow info` tells about the machine: the helpers burrow found and
// their versions, the subordinate id ranges, and the kernel features burrow
// relies on. Runs in the CLI (host namespaces, as the calling user).
import { accelerationSupport } from "../sys/seccomp.ts";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { userInfo } from "node:os";
import { cniPluginDirs, findHelper, helperConf } from "../machine/helpers.ts";
import { policyRoutingMissing } from "../sys/netlink.ts";
import { rootlessDefault, type RootlessDefault } from "../machine/rootless-default.ts";
import { cleanEnv } from "../sys/env.ts";
import { LANDLOCK_MIN_ABI, landlockAbi } from "../sys/caps.ts";
import { findRange, type IdRange } from "../userns/idmap.ts";

export interface HelperInfo {
  Name: string;
  Path: string;
  Version: string;
  /** Where the version came from: the helper's own --version, or the package that installed it. */
  VersionFrom: "helper" | "package" | "none";
  /** The helper's own first line of --version (or of its usage). */
  Detail: string;
  Kind: "network" | "dns" | "userns" | "cni-plugin";
}

const TOOLS: Array<[name: string, kind: HelperInfo["Kind"]]> = [
  ["slirp4netns", "network"],
  ["pasta", "network"],
  ["netavark", "network"],
  ["aardvark-dns", "dns"],
  ["dnsmasq", "dns"],
  ["newuidmap", "userns"],
  ["newgidmap", "userns"],
];
// netavark and aardvark-dns live in podman's own libexec directories.
const PODMAN_DIRS = ["/usr/libexec/podman", "/usr/lib/podman", "/usr/local/libexec/podman"];

/** containers.conf as doctor and the daemon read it; a broken file is doctor's to report, not info's. */
function conf() {
  try {
    return helperConf();
  } catch {
    return { files: [] };
  }
}

/** The rootless default as the daemon picks it (src/machine/rootless-default.ts), from this process's PATH and containers.conf. */
export function defaultRootlessBackend(): RootlessDefault {
  const c = conf();
  return rootlessDefault(c, (name) => findHelper(name, c));
}

/** Where burrow finds NAME (src/machine/helpers.ts), else podman's directories. */
function which(name: string): string | null {
  const found = findHelper(name, conf());
  if (found) return found;
  for (const dir of PODMAN_DIRS) if (existsSync(`${dir}/${name}`)) return `${dir}/${name}`;
  return null;
}

function firstLine(cmd: string[], env: Record<string, string> = cleanEnv()): string {
  try {
    const p = Bun.spawnSync(cmd, { env, stdout: "pipe", stderr: "pipe", stdin: "ignore", timeout: 3000 });
    return (
      (p.stdout.toString() + p.stderr.toString())
        .split("\n")
        .find((l) => l.trim())
        ?.trim() ?? ""
    );
  } catch {
    return "";
  }
}

/** A version number in a helper's --version line, unless it says it does not know its own. */
export function versionIn(line: string): string | null {
  if (/unknown/i.test(line)) return null;
  return /\bv?(\d+(?:\.\d+)+(?:[-+~][\w.+~-]*)?)/.exec(line)?.[1] ?? null;
}

/** Debian/Ubuntu: the version of the package that owns each path (one dpkg-query for all). */
function packageVersions(paths: string[]): Map<string, string> {
  const out = new Map<string, string>();
  if (!paths.length || !which("dpkg-query")) return out;
  const owners = new Map<string, string>();
  const search = Bun.spawnSync(["dpkg-query", "-S", ...paths], { env: cleanEnv(), stdout: "pipe", stderr: "ignore" });
  for (const line of search.stdout.toString().split("\n")) {
    const m = /^([^:,\s]+)(?::\w+)?(?:, [^:]+)*: (.+)$/.exec(line.trim());
    if (m) owners.set(m[2]!, m[1]!);
  }
  const pkgs = [...new Set(owners.values())];
  if (!pkgs.length) return out;
  const show = Bun.spawnSync(
    // dpkg-query's own ${Package} fields, not a JS template.
    ["dpkg-query", "-W", "-f", "${Package} ${Version}\\n", ...pkgs],
    { env: cleanEnv(), stdout: "pipe", stderr: "ignore" },
  );
  const versions = new Map(
    show.stdout
      .toString()
      .split("\n")
      .filter(Boolean)
      .map((l) => l.split(" ") as [string, string]),
  );
  for (const [path, pkg] of owners) {
    const ver = versions.get(pkg);
    if (ver) out.set(path, `${ver} (${pkg})`);
  }
  return out;
}

/** Every helper burrow can use that is installed here, with its version. */
export function helpers(): { found: HelperInfo[]; missing: string[] } {
  const found: Array<Omit<HelperInfo, "Version" | "VersionFrom">> = [];
  const missing: string[] = [];
  for (const [name, kind] of TOOLS) {
    const path = which(name);
    if (!path) {
      missing.push(name);
      continue;
    }
    found.push({ Name: name, Path: path, Kind: kind, Detail: firstLine([path, "--version"]) });
  }
  const seen = new Set<string>();
  for (const dir of cniPluginDirs(conf())) {
    let names: string[];
    try {
      names = readdirSync(dir).sort();
    } catch {
      continue;
    }
    for (const name of names) {
      const path = `${dir}/${name}`;
      if (seen.has(name)) continue;
      try {
        if (!statSync(path).isFile() || !(statSync(path).mode & 0o111)) continue;
      } catch {
        continue;
      }
      seen.add(name);
      // A CNI plugin run without CNI_COMMAND prints "CNI NAME plugin vX.Y.Z".
      found.push({ Name: name, Path: path, Kind: "cni-plugin", Detail: firstLine([path], cleanEnv({ CNI_COMMAND: undefined })) });
    }
  }
  const needPackage = found.filter((h) => !versionIn(h.Detail)).map((h) => h.Path);
  const pkg = packageVersions(needPackage);
  return {
    found: found.map((h) => {
      const own = versionIn(h.Detail);
      if (own) return { ...h, Version: own, VersionFrom: "helper" as const };
      const p = pkg.get(h.Path);
      return p ? { ...h, Version: p, VersionFrom: "package" as const } : { ...h, Version: "unknown", VersionFrom: "none" as const };
    }),
    missing,
  };
}

function read(path: string): string | null {
  try {
    return readFileSync(path, "utf8").trim();
  } catch {
    return null;
  }
}

export interface KernelFeature {
  Name: string;
  Available: boolean;
  Detail: string;
}

/** The kernel features burrow uses, as this machine has them. */
export function kernelFeatures(): KernelFeature[] {
  const maxUserNs = read("/proc/sys/user/max_user_namespaces");
  const unprivClone = read("/proc/sys/kernel/unprivileged_userns_clone");
  const apparmor = read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns");
  const portStart = read("/proc/sys/net/ipv4/ip_unprivileged_port_start");
  const forward = read("/proc/sys/net/ipv4/ip_forward");
  const landlock = landlockAbi();
  return [
    { Name: "user namespaces", Available: maxUserNs !== null && Number(maxUserNs) > 0, Detail: `user.max_user_namespaces=${maxUserNs ?? "absent"}` },
    {
      Name: "unprivileged user namespaces",
      Available: unprivClone !== "0" && apparmor !== "1",
      Detail:
        [
          unprivClone !== null ? `kernel.unprivileged_userns_clone=${unprivClone}` : "",
          apparmor !== null ? `kernel.apparmor_restrict_unprivileged_userns=${apparmor}` : "",
        ]
          .filter(Boolean)
          .join(", ") || "no restriction",
    },
    { Name: "network namespaces", Available: existsSync("/proc/self/ns/net"), Detail: "/proc/self/ns/net" },
    { Name: "mount namespaces", Available: existsSync("/proc/self/ns/mnt"), Detail: "/proc/self/ns/mnt" },
    { Name: "tun device", Available: existsSync("/dev/net/tun"), Detail: "/dev/net/tun (slirp4netns, pasta)" },
    { Name: "unprivileged low ports", Available: portStart !== null, Detail: `net.ipv4.ip_unprivileged_port_start=${portStart ?? "absent"}` },
    {
      Name: "Landlock",
      Available: landlock >= LANDLOCK_MIN_ABI,
      Detail:
        landlock >= LANDLOCK_MIN_ABI
          ? `ABI ${landlock}: each sandbox gets its own domain`
          : `${landlock ? `ABI ${landlock}, too old` : "absent"}: sandboxes with equal capabilities can ptrace each other (burrow doctor)`,
    },
    clientAddressFeature(),
    { Name: "IPv4 forwarding", Available: forward === "1", Detail: `net.ipv4.ip_forward=${forward ?? "absent"} (bridge networks, in their namespace)` },
    accelerationFeature(),
  ];
}

/** --accelerate: seccomp user notification with ADDFD (src/sys/seccomp.ts probes it). */
function accelerationFeature(): KernelFeature {
  const a = accelerationSupport();
  return {
    Name: "--accelerate",
    Available: a.ok,
    Detail: a.ok ? `seccomp user notification with ADDFD${a.addfdSend ? " and SEND" : ""}` : `needs ${a.missing}`,
  };
}

/**
 * Whether the builtin forwarder can hand sandboxes TCP clients' own
 * addresses (src/ports/client-address.ts): it needs policy routing
 * (CONFIG_IP_MULTIPLE_TABLES) and net.ipv4.tcp_fwmark_accept. Said once
 * here; each port's inspect SourceAddresses says what it got.
 */
function clientAddressFeature(): KernelFeature {
  const name = "client address on published ports";
  if (read("/proc/sys/net/ipv4/tcp_fwmark_accept") === null)
    return { Name: name, Available: false, Detail: "net.ipv4.tcp_fwmark_accept is absent (kernel older than 3.15): sandboxes see the forwarder's address" };
  const missing = policyRoutingMissing();
  if (missing) return { Name: name, Available: false, Detail: `no policy routing in this kernel (${missing}): sandboxes see the forwarder's address` };
  return {
    Name: name,
    Available: true,
    Detail:
      "TCP clients not on loopback keep their address behind the builtin forwarder (slirp4netns, rootless bridge networks); slirp4netns:source_ip=false turns it off",
  };
}

export interface IdMap {
  ContainerID: number;
  HostID: number;
  Size: number;
}

export interface IdRanges {
  User: string;
  /** The user's /etc/subuid and /etc/subgid ranges. */
  Subuid: { Start: number; Count: number } | null;
  Subgid: { Start: number; Count: number } | null;
  /** The maps in use: /proc/PID/uid_map and gid_map of the rootless session holder, when it runs. */
  UidMap: IdMap[];
  GidMap: IdMap[];
}

const range = (r: IdRange | null) => (r ? { Start: r.start, Count: r.count } : null);

export function idRanges(uid: number, holderPid?: number): IdRanges {
  let user = String(uid);
  try {
    user = userInfo().username;
  } catch {}
  const map = (p: string): IdMap[] =>
    (read(p) ?? "")
      .split("\n")
      .map((l) => l.trim().split(/\s+/).map(Number))
      .filter((f) => f.length === 3 && f.every(Number.isInteger))
      .map(([c, h, n]) => ({ ContainerID: c!, HostID: h!, Size: n! }));
  return {
    User: user,
    Subuid: range(findRange(read("/etc/subuid") ?? "", user, uid)),
    Subgid: range(findRange(read("/etc/subgid") ?? "", user, uid)),
    UidMap: holderPid ? map(`/proc/${holderPid}/uid_map`) : [],
    GidMap: holderPid ? map(`/proc/${holderPid}/gid_map`) : [],
  };
}

export function kernelRelease(): string {
  return read("/proc/sys/kernel/osrelease") ?? "unknown";
}
