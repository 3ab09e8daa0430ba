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
import { Mutex } from "../../mutex.ts";
import {
  type Conflist,
  ConflistSchema,
  type IpamRange,
  bridgePlugins,
  buildConflist,
  conflistBridge,
  conflistLabels,
  conflistRanges,
  conflistText,
  describeIssues,
  networkId,
} from "./conflist.ts";
import { readHostRoutes, readInterfaceNames } from "./host.ts";
import { type Subnet, parseCidr, subnetsOverlap } from "./ip.ts";
import { DEFAULT_PLUGIN_DIRS } from "./plugins.ts";
import { pickFreeBridgeName, pickFreeSubnet } from "./subnet.ts";
import {
  BRIDGE_PREFIX,
  CreateNetworkSchema,
  type CreateNetworkInput,
  type CreateNetworkOptions,
  planPlugins,
  planRanges,
  SUPPORTED_DRIVERS,
} from "./network-plan.ts";

export { BRIDGE_PREFIX, CreateNetworkSchema, SUPPORTED_DRIVERS, type CreateNetworkOptions };

/** The subnets of a network's ranges (unparsable ones skipped: list() reported them). */
function parseSubnets(ranges: IpamRange[]): Subnet[] {
  return ranges.flatMap((r) => {
    const parsed = parseCidr(r.subnet);
    return parsed ? [parsed.subnet] : [];
  });
}

export const DEFAULT_NETWORK = "burrow";
export const DEFAULT_SUBNET = "10.89.0.0/24";
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

export class NetworkStore {
  readonly dir: string;
  private readonly pluginDirs: string[];
  private readonly hostRoutes: () => Subnet[];
  private readonly interfaceNames: () => string[];
  /** Serializes create/remove/prune in this process: subnet and bridge choice must not race. */
  private readonly mutex = new Mutex();

  constructor(opts: NetworkStoreOptions) {
    this.dir = opts.dir;
    this.pluginDirs = opts.pluginDirs ?? DEFAULT_PLUGIN_DIRS;
    this.hostRoutes = opts.hostRoutes ?? readHostRoutes;
    this.interfaceNames = opts.interfaceNames ?? readInterfaceNames;
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
    if (!parsed.success) throw new BurrowError(parsed.issues.map((i) => i.message).join("; "), { kind: "bad-input" });
    return this.mutex.run(() => this.createLocked(parsed.output));
  }

  private async createLocked(opts: CreateNetworkInput): Promise<CreatedNetwork> {
    const warnings: string[] = [];
    const { networks } = await this.list();
    if (opts.name !== undefined && networks.some((n) => n.name === opts.name)) {
      throw new BurrowError(`network name ${opts.name} already used`, { kind: "network-exists" });
    }
    const taken = networks.flatMap((n) => parseSubnets(n.subnets).map((subnet) => ({ subnet, network: n.name })));
    const ranges = planRanges(opts, taken, this.hostRoutes);

    const { name, plugins } = planPlugins(opts, {
      ranges,
      networks,
      interfaceNames: this.interfaceNames(),
      hasDnsname: () => this.hasPlugin("dnsname"),
      pluginDirs: this.pluginDirs,
      warnings,
    });

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

  private hasPlugin(type: string): boolean {
    return this.pluginDirs.some((d) => existsSync(join(d, type)));
  }

  /** Deletes a network's file. The default network cannot be removed. Returns what was removed (the caller deletes its bridge). */
  async remove(nameOrId: string): Promise<Network> {
    return this.mutex.run(async () => {
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
    return this.mutex.run(async () => {
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
