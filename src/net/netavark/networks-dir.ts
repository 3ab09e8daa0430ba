// podman 4-6's network files in podman's places (docs/netavark.md "Network
// files"): list them (every file, a bad one with its reason), the implicit
// default network `podman`, whether burrow can serve each one, and creating
// and removing a file the way `podman network create/rm` would, so that
// podman and burrow see the same networks.
//
// burrow never rewrites a file it did not create; it only reads it, or
// removes it on `network rm` as podman would.
//
// Runs in the caller's mount namespace (files only: no netns, no netavark).
import { createHash, randomBytes } from "node:crypto";
import { constants, linkSync, mkdirSync, openSync, closeSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import * as v from "valibot";
import { BurrowError } from "../../errors.ts";
import { formatIssues } from "../../messages.ts";
import { quote } from "../../quote.ts";
import { formatIp, parseCidr, type Subnet, subnetsOverlap, subnetToString } from "../cni/ip.ts";
import { NETWORK_NAME_PATTERN, NetworkFile, NetworkName } from "./schema.ts";

/** podman's default network (containers.conf default_network, default_subnet). */
export const DEFAULT_NETWORK_NAME = "podman";
export const DEFAULT_NETWORK_SUBNET = "10.88.0.0/16";
export const DEFAULT_NETWORK_INTERFACE = "podman0";
/** Bridges of new networks are podmanN (podman's GetFreeDeviceName). */
export const BRIDGE_PREFIX = "podman";
export const NETWORK_FILE_EXT = ".json";
/** What netavark's bridge driver accepts as ipam_options.driver; absent means host-local. */
export const IPAM_HOST_LOCAL = "host-local";
export const IPAM_NONE = "none";
export const IPAM_DHCP = "dhcp";

export interface PodmanDirOptions {
  rootless: boolean;
  /** containers.conf [network] network_config_dir: wins over everything else. */
  networkConfigDir?: string;
  /** storage.conf graphroot (rootless_storage_path): rootless networks live in GRAPHROOT/networks. */
  graphRoot?: string;
  home?: string;
  xdgDataHome?: string;
}

/**
 * Where podman keeps netavark network files: rootful /etc/containers/networks;
 * rootless the storage graphroot's `networks/`, by default
 * $XDG_DATA_HOME/containers/storage/networks.
 */
export function podmanNetworksDir(o: PodmanDirOptions): string {
  if (o.networkConfigDir) return o.networkConfigDir;
  if (!o.rootless) return "/etc/containers/networks";
  if (o.graphRoot) return join(o.graphRoot, "networks");
  const dataHome = o.xdgDataHome || (o.home ? join(o.home, ".local/share") : null);
  if (!dataHome) throw new BurrowError("cannot find podman's network directory: neither XDG_DATA_HOME nor HOME is set", { kind: "network-invalid" });
  return join(dataHome, "containers/storage/networks");
}

/** Why burrow cannot serve a network: the field and its value, and a sentence. */
export interface Unservable {
  field: string;
  value: string;
  reason: string;
}

export interface PodmanNetwork {
  name: string;
  /** The file, or null for the implicit default network. */
  file: string | null;
  config: NetworkFile;
  /** null when burrow can serve it. */
  unservable: Unservable | null;
}

export interface InvalidNetworkFile {
  file: string;
  /** One line. */
  reason: string;
}

export interface NetworkListing {
  networks: PodmanNetwork[];
  invalid: InvalidNetworkFile[];
}

/** podman's in-memory default network (never written to disk; a podman.json file replaces it). */
export function defaultNetworkConfig(o: { name?: string; subnet?: string; now?: Date } = {}): NetworkFile {
  const name = o.name ?? DEFAULT_NETWORK_NAME;
  const parsed = parseCidr(o.subnet ?? DEFAULT_NETWORK_SUBNET);
  if (!parsed) throw new BurrowError(`invalid default subnet ${quote(o.subnet)}: a CIDR subnet is expected`, { kind: "network-invalid" });
  return {
    name,
    // podman's default id is sha256(name), so it is stable across runs.
    id: createHash("sha256").update(name).digest("hex"),
    driver: "bridge",
    network_interface: DEFAULT_NETWORK_INTERFACE,
    created: (o.now ?? new Date()).toISOString(),
    subnets: [{ subnet: subnetToString(parsed.subnet), gateway: formatIp(parsed.subnet.family, parsed.subnet.network + 1n) }],
    ipv6_enabled: false,
    internal: false,
    // podman's default network has no DNS (aardvark-dns serves only named networks).
    dns_enabled: false,
    ipam_options: { driver: IPAM_HOST_LOCAL },
  };
}

/** Whether burrow can serve this network with netavark, and if not, why. */
export function unservableReason(n: NetworkFile, rootless: boolean): Unservable | null {
  if (n.driver !== "bridge") {
    const extra = (n.driver === "macvlan" || n.driver === "ipvlan") && rootless ? " (and it needs root)" : "";
    return { field: "driver", value: n.driver, reason: `burrow serves bridge networks only${extra}` };
  }
  const ipam = n.ipam_options?.driver ?? IPAM_HOST_LOCAL;
  if (ipam !== IPAM_HOST_LOCAL && ipam !== IPAM_NONE) {
    return { field: "ipam_options.driver", value: ipam, reason: `burrow supports the IPAM drivers ${IPAM_HOST_LOCAL} and ${IPAM_NONE}` };
  }
  if (ipam === IPAM_HOST_LOCAL && !n.subnets?.length) {
    return { field: "subnets", value: "[]", reason: `a ${IPAM_HOST_LOCAL} network needs at least one subnet` };
  }
  return null;
}

/** A file's content checked as podman's loader would; a one-line reason, or the config. */
export function parseNetworkFile(fileName: string, text: string): { config: NetworkFile } | { reason: string } {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    return { reason: `not valid JSON: ${(e as Error).message}` };
  }
  const r = v.safeParse(NetworkFile, json);
  if (!r.success) return { reason: formatIssues(r.issues) };
  // podman skips a file whose name field does not match its file name.
  if (`${r.output.name}${NETWORK_FILE_EXT}` !== fileName) return { reason: `its name ${quote(r.output.name)} does not match the file name` };
  return { config: r.output };
}

/**
 * Every network in `dir` (sorted by name), plus the implicit default network
 * unless a file defines it. A missing directory is no networks. A file that
 * does not parse is in `invalid` with its reason, never silently dropped.
 */
export function readNetworks(dir: string, o: { rootless: boolean; defaultNetwork?: NetworkFile }): NetworkListing {
  let entries: string[];
  try {
    entries = readdirSync(dir).filter((e) => e.endsWith(NETWORK_FILE_EXT) && !e.startsWith("."));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT")
      throw new BurrowError(`cannot read network directory ${dir}: ${(e as Error).message}`, { kind: "network-invalid", cause: e });
    entries = [];
  }
  const networks: PodmanNetwork[] = [];
  const invalid: InvalidNetworkFile[] = [];
  const ids = new Map<string, string>();
  for (const entry of entries.sort()) {
    const file = join(dir, entry);
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch (e) {
      invalid.push({ file, reason: `cannot read it: ${(e as Error).message}` });
      continue;
    }
    const parsed = parseNetworkFile(entry, text);
    if ("reason" in parsed) {
      invalid.push({ file, reason: parsed.reason });
      continue;
    }
    const other = ids.get(parsed.config.id);
    if (other) {
      invalid.push({ file, reason: `its id ${parsed.config.id.slice(0, 12)} is also network ${quote(other)}'s` });
      continue;
    }
    ids.set(parsed.config.id, parsed.config.name);
    networks.push({ name: parsed.config.name, file, config: parsed.config, unservable: unservableReason(parsed.config, o.rootless) });
  }
  const def = o.defaultNetwork ?? defaultNetworkConfig();
  if (!networks.some((n) => n.name === def.name)) {
    networks.push({ name: def.name, file: null, config: def, unservable: unservableReason(def, o.rootless) });
  }
  networks.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { networks, invalid };
}

/** What `network create` asks for; everything optional is chosen as podman would. */
export interface NewNetworkRequest {
  name: string;
  /** Subnets in CIDR form; none means one free IPv4 /24 from podman's pool (and an IPv6 /64 with ipv6). */
  subnets?: { subnet: string; gateway?: string; leaseRange?: { start: string; end: string } }[];
  ipv6?: boolean;
  internal?: boolean;
  /** podman's default for new networks is true (aardvark-dns); --disable-dns sets false. */
  dnsEnabled?: boolean;
  /** "host-local" (default) or "none" (no addresses at all). */
  ipamDriver?: typeof IPAM_HOST_LOCAL | typeof IPAM_NONE;
  interfaceName?: string;
  labels?: Record<string, string>;
  options?: Record<string, string>;
}

/** What else is in use on the machine: host routes' subnets and link names (podman checks both). */
export interface InUse {
  subnets: string[];
  interfaces: string[];
}

/**
 * podman's default_subnet_pools, in order: 10.89.0.0/16, 10.90.0.0/15,
 * 10.92.0.0/14, 10.96.0.0/11, 10.128.0.0/9, each cut into /24s; together
 * 10.89.0.0/24 up to 10.255.255.0/24.
 */
function* ipv4Pool(): Generator<Subnet> {
  for (let n = (10n << 24n) | (89n << 16n); n <= ((10n << 24n) | 0xffff00n); n += 256n) yield { family: 4, network: n, prefix: 24 };
}

/** The first /24 of podman's pool that overlaps no used subnet; null when the pool is exhausted. */
export function pickFreeIpv4Subnet(used: Subnet[]): Subnet | null {
  for (const candidate of ipv4Pool()) if (!used.some((u) => subnetsOverlap(candidate, u))) return candidate;
  return null;
}

/** A random unique-local /64 (fdXX:XXXX:XXXX:XXXX::/64), as podman makes for --ipv6 without a subnet. */
export function randomUlaSubnet(used: Subnet[], random: (n: number) => Buffer = randomBytes): Subnet {
  for (let attempt = 0; attempt < 1000; attempt++) {
    const bytes = random(7);
    let n = 0xfdn;
    for (const b of bytes) n = (n << 8n) | BigInt(b);
    const candidate: Subnet = { family: 6, network: n << 64n, prefix: 64 };
    if (!used.some((u) => subnetsOverlap(candidate, u))) return candidate;
  }
  throw new BurrowError("could not find a free IPv6 subnet", { kind: "network-invalid" });
}

function badInput(message: string): BurrowError {
  return new BurrowError(message, { kind: "bad-input" });
}

/**
 * The file `podman network create` would write for `req`, given the existing
 * networks and what else is in use: a new random id, the first free podmanN
 * bridge, the first free subnet. Refuses a name that exists (as podman:
 * "network name NAME already used").
 */
export function planNetwork(
  req: NewNetworkRequest,
  existing: NetworkFile[],
  inUse: InUse,
  o: { now?: Date; random?: (n: number) => Buffer } = {},
): NetworkFile {
  const name = v.safeParse(NetworkName, req.name);
  if (!name.success) throw badInput(formatIssues(name.issues));
  if (existing.some((n) => n.name === req.name)) throw new BurrowError(`network name ${quote(req.name)} already used`, { kind: "network-exists" });
  const random = o.random ?? randomBytes;
  const ipam = req.ipamDriver ?? IPAM_HOST_LOCAL;

  const used: Subnet[] = [];
  for (const s of [...existing.flatMap((n) => n.subnets?.map((x) => x.subnet) ?? []), ...inUse.subnets]) {
    const p = parseCidr(s);
    if (p) used.push(p.subnet);
  }

  const subnets: NetworkFile["subnets"] = [];
  if (ipam === IPAM_HOST_LOCAL) {
    for (const want of req.subnets ?? []) {
      const p = parseCidr(want.subnet);
      if (!p) throw badInput(`invalid subnet ${quote(want.subnet)}: a CIDR subnet such as 10.89.5.0/24 is expected`);
      const clash = used.find((u) => subnetsOverlap(u, p.subnet));
      if (clash) throw badInput(`subnet ${subnetToString(p.subnet)} is already used on the host or by another network (${subnetToString(clash)})`);
      const gateway = want.gateway ?? formatIp(p.subnet.family, p.subnet.network + 1n);
      subnets.push({
        subnet: subnetToString(p.subnet),
        gateway,
        ...(want.leaseRange ? { lease_range: { start_ip: want.leaseRange.start, end_ip: want.leaseRange.end } } : {}),
      });
      used.push(p.subnet);
    }
    const has = (family: 4 | 6) => subnets.some((s) => parseCidr(s.subnet)!.subnet.family === family);
    // podman: no --subnet gives one IPv4 subnet; --ipv6 adds an IPv6 one unless given.
    if (!has(4) && !(req.subnets?.length && req.ipv6)) {
      const free = pickFreeIpv4Subnet(used);
      if (!free) throw new BurrowError("could not find a free IPv4 subnet in 10.89.0.0-10.255.255.0", { kind: "network-invalid" });
      subnets.push({ subnet: subnetToString(free), gateway: formatIp(4, free.network + 1n) });
      used.push(free);
    }
    if (req.ipv6 && !has(6)) {
      const free = randomUlaSubnet(used, random);
      subnets.push({ subnet: subnetToString(free), gateway: formatIp(6, free.network + 1n) });
    }
  } else if (req.subnets?.length) {
    throw badInput(`--subnet cannot be used with the IPAM driver ${ipam}`);
  }

  const takenLinks = new Set([...existing.map((n) => n.network_interface ?? ""), ...inUse.interfaces]);
  let iface = req.interfaceName;
  if (iface === undefined) {
    for (let n = 0; ; n++) {
      if (!takenLinks.has(`${BRIDGE_PREFIX}${n}`)) {
        iface = `${BRIDGE_PREFIX}${n}`;
        break;
      }
    }
  } else if (!/^[a-zA-Z0-9_.-]{1,15}$/.test(iface) || iface === "." || iface === "..") {
    throw badInput(`invalid interface name ${quote(iface)}: 1 to 15 letters, digits, "_", "." or "-"`);
  } else if (existing.some((n) => n.network_interface === iface)) {
    throw badInput(`bridge name ${quote(iface)} is already used by another network`);
  }

  // Key order as podman's Go struct, so the file reads like podman's own.
  const file: NetworkFile = {
    name: req.name,
    id: random(32).toString("hex"),
    driver: "bridge",
    network_interface: iface,
    created: (o.now ?? new Date()).toISOString(),
    ...(subnets.length ? { subnets } : {}),
    ipv6_enabled: subnets.some((s) => parseCidr(s.subnet)!.subnet.family === 6),
    internal: req.internal ?? false,
    dns_enabled: req.dnsEnabled ?? ipam !== IPAM_NONE,
    ...(req.labels && Object.keys(req.labels).length ? { labels: req.labels } : {}),
    ...(req.options && Object.keys(req.options).length ? { options: req.options } : {}),
    ipam_options: { driver: ipam },
  };
  return v.parse(NetworkFile, file);
}

/** podman's layout: json.MarshalIndent with five spaces, and a newline. */
export function formatNetworkFile(config: NetworkFile): string {
  return `${JSON.stringify(config, null, 5)}\n`;
}

/**
 * Writes NAME.json into `dir`, mode 0644 like podman, atomically and never
 * over an existing file: written to a temporary name, then hard-linked to
 * its name (EEXIST if another podman or burrow created it meanwhile).
 * Returns the file's path.
 */
export function writeNetworkFile(dir: string, config: NetworkFile): string {
  if (!NETWORK_NAME_PATTERN.test(config.name)) throw badInput(`invalid network name ${quote(config.name)}`);
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const path = join(dir, `${config.name}${NETWORK_FILE_EXT}`);
  const tmp = join(dir, `.${config.name}${NETWORK_FILE_EXT}.${process.pid}`);
  rmSync(tmp, { force: true });
  const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o644);
  try {
    writeFileSync(fd, formatNetworkFile(config));
  } finally {
    closeSync(fd);
  }
  try {
    linkSync(tmp, path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EEXIST") throw new BurrowError(`network name ${quote(config.name)} already used`, { kind: "network-exists" });
    throw e;
  } finally {
    rmSync(tmp, { force: true });
  }
  return path;
}

/**
 * Removes network `name`'s file, as `podman network rm` does (the caller has
 * checked that nothing uses it). The default network cannot be removed.
 */
export function removeNetworkFile(dir: string, name: string, defaultName = DEFAULT_NETWORK_NAME): void {
  if (!NETWORK_NAME_PATTERN.test(name)) throw badInput(`invalid network name ${quote(name)}`);
  // podman refuses this one even when a file defines it.
  if (name === defaultName) throw new BurrowError(`default network ${quote(name)} cannot be removed`, { kind: "network-default" });
  const path = join(dir, `${name}${NETWORK_FILE_EXT}`);
  try {
    rmSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    throw new BurrowError(`no network with name or id ${quote(name)} found`, { kind: "not-found" });
  }
}
