// The networks of one CNI config directory, in podman v3's layout
// (~/.config/cni/net.d rootless, /etc/cni/net.d as root): one
// `<name>.conflist` per network, podman's and burrow's alike. Also the
// default network `burrow`, which exists without a file (synthesized, like
// podman's default) until someone writes burrow.conflist.
//
// Runs in the daemon's host namespaces: subnet and bridge-name choice reads
// the calling thread's routes and interfaces (see host.ts) unless the caller
// passes its own view.
import { existsSync } from "node:fs";
import { mkdir, readdir, readFile, stat, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import * as v from "valibot";
import { BurrowError, messageOf, notFound, runAll } from "../../errors.ts";
import {
  type Conflist,
  ConflistSchema,
  type IpamRange,
  NetworkNameSchema,
  type PluginConf,
  type RangeSpec,
  bridgePlugins,
  buildConflist,
  conflistBridge,
  conflistLabels,
  conflistRanges,
  conflistText,
  describeIssues,
  macvlanPlugins,
  networkId,
} from "./conflist.ts";
import { readHostRoutes, readInterfaceNames } from "./host.ts";
import { type Family, type Subnet, parseCidr, parseIp, subnetContains, subnetToString, subnetsOverlap } from "./ip.ts";
import { DEFAULT_PLUGIN_DIRS } from "./plugins.ts";
import { pickFreeBridgeName, pickFreeSubnet } from "./subnet.ts";

export const DEFAULT_NETWORK = "burrow";
export const DEFAULT_SUBNET = "10.89.0.0/24";
export const BRIDGE_PREFIX = "burrow";
export const SUPPORTED_DRIVERS = ["bridge", "macvlan"] as const;
export const CONFLIST_EXT = ".conflist";

/** A network as `network ls` / `inspect` / the runtime see it. */
export interface Network {
  name: string;
  /** podman v3's ID: sha256(name), hex. */
  id: string;
  /** The conflist file; null for the synthesized default network. */
  file: string | null;
  /** The parsed conflist (unknown keys kept): what `network inspect` prints and CNI runs. */
  conflist: Conflist;
  /** The first plugin's type: bridge, macvlan, ... */
  driver: string;
  plugins: string[];
  cniVersion: string;
  labels: Record<string, string>;
  /** IPAM ranges in file order: subnet, gateway, rangeStart/rangeEnd. */
  subnets: IpamRange[];
  /** The bridge device, for bridge networks. */
  bridge?: string;
  internal: boolean;
  dnsEnabled: boolean;
  ipv6Enabled: boolean;
  isDefault: boolean;
  /** The file's change time (podman's "created"); undefined for the synthesized default. */
  created?: Date;
}

export interface NetworkList {
  networks: Network[];
  /** One line per skipped file: `<file>: <what is wrong>`. */
  warnings: string[];
  /** The network each skipped file was meant to be (its "name", else the file name) -> its warning line. */
  skipped: Map<string, string>;
}

export interface CreatedNetwork {
  network: Network;
  /** What differs from the request, one sentence each (e.g. DNS left out of an internal network). */
  warnings: string[];
}

export interface NetworkStoreOptions {
  /** The CNI config directory (podman v3: ~/.config/cni/net.d rootless, /etc/cni/net.d root). */
  dir: string;
  /** Where to look for the dnsname plugin when deciding whether new networks get DNS. */
  pluginDirs?: string[];
  /** Subnets routed on this host, avoided by new networks. Default: the calling thread's routes. */
  hostRoutes?: () => Subnet[];
  /** Interface names in use, avoided as bridge names and checked for macvlan parents. */
  interfaceNames?: () => string[];
}

const cidrCheck = (what: string, example: string) =>
  v.check(
    (s: string) => parseCidr(s) !== null,
    (i: v.CheckIssue<string>) => `invalid ${what} ${JSON.stringify(i.input)}: expected an address/prefix such as ${example}`,
  );

/** `burrow network create`'s options (the CLI maps its flags onto these). */
export const CreateNetworkSchema = v.object({
  name: v.optional(NetworkNameSchema),
  driver: v.optional(
    v.picklist(SUPPORTED_DRIVERS, (i: v.PicklistIssue) => `unsupported network driver ${JSON.stringify(i.input)}: accepted are ${SUPPORTED_DRIVERS.join(", ")}`),
    "bridge",
  ),
  subnets: v.optional(v.array(v.pipe(v.string(), cidrCheck("subnet", "10.89.5.0/24 or fd00:0:0:5::/64"))), []),
  gateway: v.optional(
    v.pipe(
      v.string(),
      v.check(
        (s) => parseIp(s) !== null,
        (i) => `invalid gateway ${JSON.stringify(i.input)}: expected an IPv4 or IPv6 address`,
      ),
    ),
  ),
  ipRange: v.optional(v.pipe(v.string(), cidrCheck("ip-range", "10.89.5.128/25"))),
  ipv6: v.optional(v.boolean(), false),
  internal: v.optional(v.boolean(), false),
  disableDns: v.optional(v.boolean(), false),
  labels: v.optional(v.record(v.string(), v.string()), {}),
  /** macvlan: the host interface (podman: -o parent=). */
  parent: v.optional(v.string()),
  mtu: v.optional(v.pipe(v.number(), v.integer("mtu must be an integer"), v.minValue(0, "mtu must be 0 or more"))),
  vlan: v.optional(v.pipe(v.number(), v.integer("vlan must be an integer"), v.minValue(0, "vlan must be 0-4094"), v.maxValue(4094, "vlan must be 0-4094"))),
});
export type CreateNetworkOptions = v.InferInput<typeof CreateNetworkSchema>;

/** What a parsed conflist says about itself. */
export function describeNetwork(conflist: Conflist, file: string | null, isDefault: boolean, created?: Date): Network {
  const subnets = conflistRanges(conflist);
  const bridgePlugin = conflist.plugins.find((p) => p.type === "bridge");
  return {
    name: conflist.name,
    id: networkId(conflist.name),
    file,
    conflist,
    driver: conflist.plugins[0]!.type,
    plugins: conflist.plugins.map((p) => p.type),
    cniVersion: conflist.cniVersion,
    labels: conflistLabels(conflist),
    subnets,
    bridge: conflistBridge(conflist),
    // podman reads a bridge without gateway and masquerade as internal.
    internal: bridgePlugin !== undefined && bridgePlugin.isGateway !== true && bridgePlugin.ipMasq !== true,
    dnsEnabled: conflist.plugins.some((p) => p.type === "dnsname"),
    ipv6Enabled: subnets.some((r) => parseCidr(r.subnet)?.subnet.family === 6),
    isDefault,
    created,
  };
}

function parseSubnets(ranges: IpamRange[]): Subnet[] {
  return ranges.flatMap((r) => {
    const parsed = parseCidr(r.subnet);
    return parsed ? [parsed.subnet] : [];
  });
}

export class NetworkStore {
  readonly dir: string;
  private readonly pluginDirs: string[];
  private readonly hostRoutes: () => Subnet[];
  private readonly interfaceNames: () => string[];
  /** Serializes create/remove/prune in this process: subnet and bridge choice must not race. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(opts: NetworkStoreOptions) {
    this.dir = opts.dir;
    this.pluginDirs = opts.pluginDirs ?? DEFAULT_PLUGIN_DIRS;
    this.hostRoutes = opts.hostRoutes ?? readHostRoutes;
    this.interfaceNames = opts.interfaceNames ?? readInterfaceNames;
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Every network, sorted by name; files that cannot be read as conflists are skipped and reported. */
  async list(): Promise<NetworkList> {
    const warnings: string[] = [];
    let entries: string[] = [];
    try {
      entries = (await readdir(this.dir)).filter((f) => f.endsWith(CONFLIST_EXT)).sort();
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") warnings.push(`${this.dir}: ${messageOf(e)}`);
    }
    const byName = new Map<string, Network>();
    const skipped = new Map<string, string>();
    for (const entry of entries) {
      const file = join(this.dir, entry);
      const skip = (problem: string, name = entry.slice(0, -CONFLIST_EXT.length)) => {
        const line = `${file}: ${problem}`;
        warnings.push(line);
        if (!skipped.has(name)) skipped.set(name, line);
      };
      let text: string;
      let created: Date;
      try {
        const st = await stat(file);
        if (!st.isFile()) continue;
        created = st.ctime;
        text = await readFile(file, "utf8");
      } catch (e) {
        skip(messageOf(e));
        continue;
      }
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch (e) {
        skip(`invalid JSON: ${messageOf(e)}`);
        continue;
      }
      const parsed = v.safeParse(ConflistSchema, json);
      if (!parsed.success) {
        const name = (json as { name?: unknown } | null)?.name;
        skip(describeIssues(parsed.issues), typeof name === "string" && name ? name : undefined);
        continue;
      }
      const seen = byName.get(parsed.output.name);
      if (seen) {
        warnings.push(`${file}: network name ${parsed.output.name} is already defined in ${seen.file}`);
        continue;
      }
      byName.set(parsed.output.name, describeNetwork(parsed.output, file, parsed.output.name === DEFAULT_NETWORK, created));
    }
    if (!byName.has(DEFAULT_NETWORK)) byName.set(DEFAULT_NETWORK, this.synthesizeDefault([...byName.values()]));
    const networks = [...byName.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    return { networks, warnings, skipped };
  }

  /**
   * The default network when no burrow.conflist exists: bridge burrow0 on
   * 10.89.0.0/24, without DNS (like podman's default). Only the files decide
   * (never host routes), so it is the same on every call; it moves off
   * 10.89.0.0/24 or burrow0 only if a file network already has them.
   */
  private synthesizeDefault(others: Network[]): Network {
    const used = others.flatMap((n) => parseSubnets(n.subnets));
    let subnet = parseCidr(DEFAULT_SUBNET)!.subnet;
    if (used.some((u) => subnetsOverlap(u, subnet))) subnet = pickFreeSubnet(4, used) ?? subnet;
    const bridge = pickFreeBridgeName(
      others.flatMap((n) => (n.bridge ? [n.bridge] : [])),
      BRIDGE_PREFIX,
    );
    const conflist = buildConflist(DEFAULT_NETWORK, bridgePlugins({ bridge, ranges: [{ subnet }], internal: false, dns: false }));
    return describeNetwork(conflist, null, true);
  }

  /** A network by name, full ID or unique ID prefix (like podman's NormalizeName). */
  async get(nameOrId: string): Promise<Network> {
    const { networks, skipped } = await this.list();
    try {
      return resolveNetwork(networks, nameOrId);
    } catch (e) {
      // "not found" would hide the reason when the file is there but broken.
      const why = skipped.get(nameOrId);
      if (why && e instanceof BurrowError && e.kind === "not-found")
        throw new BurrowError(`network ${nameOrId} cannot be used: ${why}`, { kind: "network-invalid" });
      throw e;
    }
  }

  /** The conflist JSON, as `network inspect` prints it. */
  async inspect(nameOrId: string): Promise<Conflist> {
    return (await this.get(nameOrId)).conflist;
  }

  /** Writes `<name>.conflist`. `warnings` says what was changed from the request (podman prints these). */
  async create(input: CreateNetworkOptions): Promise<CreatedNetwork> {
    const parsed = v.safeParse(CreateNetworkSchema, input);
    // Each message names its option and value already (they map onto CLI flags, not JSON paths).
    if (!parsed.success) throw new BurrowError(parsed.issues.map((i) => i.message).join("; "), { kind: "invalid-argument" });
    return this.exclusive(() => this.createLocked(parsed.output));
  }

  private async createLocked(opts: v.InferOutput<typeof CreateNetworkSchema>): Promise<CreatedNetwork> {
    const warnings: string[] = [];
    const { networks } = await this.list();
    if (opts.name !== undefined && networks.some((n) => n.name === opts.name)) {
      throw new BurrowError(`network name ${opts.name} already used`, { kind: "network-exists" });
    }
    const taken = networks.flatMap((n) => parseSubnets(n.subnets).map((subnet) => ({ subnet, network: n.name })));
    const ranges = this.rangesFor(opts, taken);

    let plugins: PluginConf[];
    let name = opts.name;
    if (opts.driver === "macvlan") {
      if (opts.parent && !this.interfaceNames().includes(opts.parent)) {
        throw new BurrowError(`macvlan parent interface ${JSON.stringify(opts.parent)} does not exist on this host`, { kind: "invalid-argument" });
      }
      plugins = macvlanPlugins({ parent: opts.parent, ranges, mtu: opts.mtu });
      name ??= pickFreeBridgeName(networks.map((n) => n.name), BRIDGE_PREFIX);
    } else {
      const bridge = pickFreeBridgeName(
        [...networks.flatMap((n) => (n.bridge ? [n.bridge] : [])), ...this.interfaceNames()],
        BRIDGE_PREFIX,
      );
      let dns = !opts.disableDns && this.hasPlugin("dnsname");
      if (!opts.disableDns && !dns) {
        warnings.push(`the dnsname CNI plugin is not installed (looked in ${this.pluginDirs.join(", ")}): names and aliases do not resolve between sandboxes on network ${opts.name ?? bridge}`);
      }
      if (dns && opts.internal) {
        // dnsmasq listens on the bridge's address, and an internal bridge has
        // none: podman v3.0 leaves dnsname out and says so (containers/dnsname#51).
        dns = false;
        warnings.push(`dnsname and internal networks are incompatible: DNS is not configured for network ${opts.name ?? bridge}`);
      }
      plugins = bridgePlugins({ bridge, ranges, internal: opts.internal, dns, mtu: opts.mtu, vlan: opts.vlan });
      // podman: a network created without a name is named after its bridge.
      name ??= bridge;
      if (networks.some((n) => n.name === name)) throw new BurrowError(`network name ${name} already used`, { kind: "network-exists" });
    }

    const conflist = buildConflist(name, plugins, opts.labels);
    await mkdir(this.dir, { recursive: true, mode: 0o755 });
    const file = join(this.dir, `${name}${CONFLIST_EXT}`);
    try {
      // wx: never overwrite a file, even a malformed one list() skipped.
      await writeFile(file, conflistText(conflist), { flag: "wx", mode: 0o644 });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "EEXIST") {
        throw new BurrowError(`network name ${name} already used: ${file} exists`, { kind: "network-exists" });
      }
      throw new BurrowError(`cannot write network config ${file}: ${messageOf(e)}`, { cause: e });
    }
    return { network: describeNetwork(conflist, file, name === DEFAULT_NETWORK, new Date()), warnings };
  }

  /** The IPAM ranges of a new network: the given subnets (checked), plus free ones chosen as podman does. */
  private rangesFor(opts: v.InferOutput<typeof CreateNetworkSchema>, taken: Array<{ subnet: Subnet; network: string }>): RangeSpec[] {
    const given = opts.subnets.map((s) => parseCidr(s)!.subnet);
    let routes: Subnet[] | undefined;
    const hostRoutes = () => (routes ??= this.hostRoutes());
    for (const [i, subnet] of given.entries()) {
      const max = subnet.family === 4 ? 30 : 126;
      if (subnet.prefix > max) {
        throw new BurrowError(`subnet ${opts.subnets[i]} is too small: the prefix length must be at most ${max}`, { kind: "invalid-argument" });
      }
      const other = given.findIndex((g, j) => j < i && subnetsOverlap(g, subnet));
      if (other >= 0) throw new BurrowError(`subnets ${opts.subnets[other]} and ${opts.subnets[i]} overlap`, { kind: "invalid-argument" });
      const clash = taken.find((t) => subnetsOverlap(t.subnet, subnet));
      if (clash) {
        throw new BurrowError(`subnet ${subnetToString(subnet)} is already used by network ${clash.network} (${subnetToString(clash.subnet)})`, {
          kind: "invalid-argument",
        });
      }
      const route = hostRoutes().find((r) => subnetsOverlap(r, subnet));
      if (route) {
        throw new BurrowError(`subnet ${subnetToString(subnet)} is already used on this host (route ${subnetToString(route)})`, { kind: "invalid-argument" });
      }
    }
    const ranges: RangeSpec[] = given.map((subnet) => ({ subnet }));

    if (opts.gateway !== undefined) {
      const gw = parseIp(opts.gateway)!;
      const range = ranges.find((r) => subnetContains(r.subnet, gw));
      if (!range) {
        throw new BurrowError(`gateway ${opts.gateway} is not in ${ranges.length ? `subnet ${ranges.map((r) => subnetToString(r.subnet)).join(" or ")}` : "any subnet: give --subnet too"}`, {
          kind: "invalid-argument",
        });
      }
      range.gateway = opts.gateway;
    }
    if (opts.ipRange !== undefined) {
      const ipRange = parseCidr(opts.ipRange)!.subnet;
      const range = ranges.find((r) => subnetContains(r.subnet, { family: ipRange.family, value: ipRange.network }) && ipRange.prefix >= r.subnet.prefix);
      if (!range) {
        throw new BurrowError(`ip-range ${opts.ipRange} is not inside ${ranges.length ? `subnet ${ranges.map((r) => subnetToString(r.subnet)).join(" or ")}` : "any subnet: give --subnet too"}`, {
          kind: "invalid-argument",
        });
      }
      range.ipRange = ipRange;
    }

    const has = (f: Family) => ranges.some((r) => r.subnet.family === f);
    if (opts.driver === "macvlan") {
      // No subnet means DHCP on the parent's network: nothing to choose.
      if (opts.ipv6 && !has(6)) throw new BurrowError("a macvlan network with ipv6 needs an IPv6 subnet (--subnet)", { kind: "invalid-argument" });
      return ranges;
    }
    const wanted: Family[] = [];
    // No subnet at all: one IPv4 subnet. --ipv6: dual stack, choosing whichever family is missing.
    if (ranges.length === 0 || (opts.ipv6 && !has(4))) wanted.push(4);
    if (opts.ipv6 && !has(6)) wanted.push(6);
    if (wanted.length > 0) {
      const used = [...taken.map((t) => t.subnet), ...hostRoutes()];
      for (const family of wanted) {
        const subnet = pickFreeSubnet(family, used);
        if (!subnet) throw new BurrowError(`no free IPv${family} subnet left for a new network: give one with --subnet`);
        used.push(subnet);
        ranges.push({ subnet });
      }
      ranges.sort((a, b) => a.subnet.family - b.subnet.family);
    }
    return ranges;
  }

  private hasPlugin(type: string): boolean {
    return this.pluginDirs.some((d) => existsSync(join(d, type)));
  }

  /** Deletes a network's file. The default network cannot be removed. Returns what was removed (the caller deletes its bridge). */
  async remove(nameOrId: string): Promise<Network> {
    return this.exclusive(async () => {
      const network = resolveNetwork((await this.list()).networks, nameOrId);
      await this.removeFile(network);
      return network;
    });
  }

  private async removeFile(network: Network): Promise<void> {
    if (network.isDefault) {
      throw new BurrowError(`default network ${network.name} cannot be removed`, { kind: "network-default" });
    }
    try {
      await unlink(network.file!);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return;
      throw new BurrowError(`cannot remove network ${network.name}: ${messageOf(e)}`, { cause: e });
    }
  }

  /** Removes every network except the default and those named in `inUse`; failures are collected, not fatal. */
  async prune(inUse: Iterable<string>): Promise<{ removed: Network[]; errors: Error[] }> {
    const keep = new Set(inUse);
    return this.exclusive(async () => {
      const { networks } = await this.list();
      const removed: Network[] = [];
      const errors = await runAll(
        networks
          .filter((n) => !n.isDefault && !keep.has(n.name))
          .map((n) => async () => {
            await this.removeFile(n);
            removed.push(n);
          }),
      );
      return { removed, errors };
    });
  }
}

/** Name, full ID, or an ID prefix that matches exactly one network. */
export function resolveNetwork(networks: Network[], nameOrId: string): Network {
  const byName = networks.find((n) => n.name === nameOrId);
  if (byName) return byName;
  if (/^[0-9a-f]+$/.test(nameOrId)) {
    const matches = networks.filter((n) => n.id.startsWith(nameOrId));
    if (matches.length === 1) return matches[0]!;
    if (matches.length > 1) {
      throw new BurrowError(`network ID ${nameOrId} is ambiguous: it matches ${matches.map((n) => n.name).join(", ")}`, { kind: "ambiguous" });
    }
  }
  throw notFound("network", nameOrId);
}
