// Planning a new network (`network create`): its options' schema, its IPAM
// ranges (given subnets checked against each other, other networks and the
// host's routes; free ones chosen as podman v3 does) and its plugins and
// name. Pure: the store (networks.ts) passes in what it read.
import * as v from "valibot";
import { BurrowError } from "../../errors.ts";
import { quote } from "../../quote.ts";
import { NetworkNameSchema, type PluginConf, type RangeSpec, bridgePlugins, macvlanPlugins } from "./conflist.ts";
import { type Family, type Subnet, parseCidr, parseIp, subnetContains, subnetToString, subnetsOverlap } from "./ip.ts";
import type { Network } from "./networks.ts";
import { pickFreeBridgeName, pickFreeSubnet } from "./subnet.ts";
import { reservedOverlap } from "../reserved.ts";
import { RESERVED_NETWORK_NAMES, reservedNetworkName } from "../mode.ts";

export const BRIDGE_PREFIX = "burrow";
export const SUPPORTED_DRIVERS = ["bridge", "macvlan"] as const;

const cidrCheck = (what: string, example: string) =>
  v.check(
    (s: string) => parseCidr(s) !== null,
    (i: v.CheckIssue<string>) => `invalid ${what} ${JSON.stringify(i.input)}: expected an address/prefix such as ${example}`,
  );

/** `burrow network create`'s options (the CLI maps its flags onto these). */
export const CreateNetworkSchema = v.object({
  name: v.optional(
    v.pipe(
      NetworkNameSchema,
      v.check(
        (name) => reservedNetworkName(name) === null,
        (i) =>
          `invalid network name ${quote(i.input)}: it is reserved (${reservedNetworkName(String(i.input))}); reserved are ${Object.keys(RESERVED_NETWORK_NAMES).join(", ")}`,
      ),
    ),
  ),
  driver: v.optional(
    v.picklist(
      SUPPORTED_DRIVERS,
      (i: v.PicklistIssue) => `unsupported network driver ${JSON.stringify(i.input)}: accepted are ${SUPPORTED_DRIVERS.join(", ")}`,
    ),
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

export type CreateNetworkInput = v.InferOutput<typeof CreateNetworkSchema>;

/** The IPAM ranges of a new network: the given subnets (checked), plus free ones chosen as podman does. */
export function planRanges(opts: CreateNetworkInput, taken: Array<{ subnet: Subnet; network: string }>, readHostRoutes: () => Subnet[]): RangeSpec[] {
  const given = opts.subnets.map((s) => parseCidr(s)!.subnet);
  let routes: Subnet[] | undefined;
  const hostRoutes = () => (routes ??= readHostRoutes());
  for (const [i, subnet] of given.entries()) {
    const max = subnet.family === 4 ? 30 : 126;
    if (subnet.prefix > max) {
      throw new BurrowError(`subnet ${opts.subnets[i]} is too small: the prefix length must be at most ${max}`, { kind: "bad-input" });
    }
    const reserved = reservedOverlap(subnet, { slirpInternal: true });
    if (reserved)
      throw new BurrowError(`invalid subnet ${JSON.stringify(opts.subnets[i])}: ${reserved}; use a private range such as 10.89.5.0/24`, { kind: "bad-input" });
    const other = given.findIndex((g, j) => j < i && subnetsOverlap(g, subnet));
    if (other >= 0) throw new BurrowError(`subnets ${opts.subnets[other]} and ${opts.subnets[i]} overlap`, { kind: "bad-input" });
    const clash = taken.find((t) => subnetsOverlap(t.subnet, subnet));
    if (clash) {
      throw new BurrowError(`subnet ${subnetToString(subnet)} is already used by network ${clash.network} (${subnetToString(clash.subnet)})`, {
        kind: "bad-input",
      });
    }
    const route = hostRoutes().find((r) => subnetsOverlap(r, subnet));
    if (route) {
      throw new BurrowError(`subnet ${subnetToString(subnet)} is already used on this host (route ${subnetToString(route)})`, { kind: "bad-input" });
    }
  }
  const ranges: RangeSpec[] = given.map((subnet) => ({ subnet }));

  if (opts.gateway !== undefined) {
    const gw = parseIp(opts.gateway)!;
    const range = ranges.find((r) => subnetContains(r.subnet, gw));
    if (!range) {
      throw new BurrowError(
        `gateway ${opts.gateway} is not in ${ranges.length ? `subnet ${ranges.map((r) => subnetToString(r.subnet)).join(" or ")}` : "any subnet: give --subnet too"}`,
        {
          kind: "bad-input",
        },
      );
    }
    range.gateway = opts.gateway;
  }
  if (opts.ipRange !== undefined) {
    const ipRange = parseCidr(opts.ipRange)!.subnet;
    const range = ranges.find((r) => subnetContains(r.subnet, { family: ipRange.family, value: ipRange.network }) && ipRange.prefix >= r.subnet.prefix);
    if (!range) {
      throw new BurrowError(
        `ip-range ${opts.ipRange} is not inside ${ranges.length ? `subnet ${ranges.map((r) => subnetToString(r.subnet)).join(" or ")}` : "any subnet: give --subnet too"}`,
        {
          kind: "bad-input",
        },
      );
    }
    range.ipRange = ipRange;
  }

  const has = (f: Family) => ranges.some((r) => r.subnet.family === f);
  if (opts.driver === "macvlan") {
    // No subnet means DHCP on the parent's network: nothing to choose.
    if (opts.ipv6 && !has(6)) throw new BurrowError("a macvlan network with ipv6 needs an IPv6 subnet (--subnet)", { kind: "bad-input" });
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

/** The plugins and name of a new network; warnings (podman's) are appended to ctx.warnings. */
export function planPlugins(
  opts: CreateNetworkInput,
  ctx: { ranges: RangeSpec[]; networks: Network[]; interfaceNames: string[]; hasDnsname: () => boolean; pluginDirs: string[]; warnings: string[] },
): { name: string; plugins: PluginConf[] } {
  let plugins: PluginConf[];
  let name = opts.name;
  if (opts.driver === "macvlan") {
    if (opts.parent && !ctx.interfaceNames.includes(opts.parent)) {
      throw new BurrowError(`macvlan parent interface ${JSON.stringify(opts.parent)} does not exist on this host`, { kind: "bad-input" });
    }
    plugins = macvlanPlugins({ parent: opts.parent, ranges: ctx.ranges, mtu: opts.mtu });
    name ??= pickFreeBridgeName(
      ctx.networks.map((n) => n.name),
      BRIDGE_PREFIX,
    );
  } else {
    const bridge = pickFreeBridgeName([...ctx.networks.flatMap((n) => (n.bridge ? [n.bridge] : [])), ...ctx.interfaceNames], BRIDGE_PREFIX);
    let dns = !opts.disableDns && ctx.hasDnsname();
    if (!opts.disableDns && !dns) {
      ctx.warnings.push(
        `the dnsname CNI plugin is not installed (looked in ${ctx.pluginDirs.join(", ")}): names and aliases do not resolve between sandboxes on network ${opts.name ?? bridge}`,
      );
    }
    if (dns && opts.internal) {
      // dnsmasq listens on the bridge's address, and an internal bridge has
      // none: podman v3.0 leaves dnsname out and says so (containers/dnsname#51).
      dns = false;
      ctx.warnings.push(`dnsname and internal networks are incompatible: DNS is not configured for network ${opts.name ?? bridge}`);
    }
    plugins = bridgePlugins({ bridge, ranges: ctx.ranges, internal: opts.internal, dns, mtu: opts.mtu, vlan: opts.vlan });
    // podman: a network created without a name is named after its bridge.
    name ??= bridge;
    if (ctx.networks.some((n) => n.name === name)) throw new BurrowError(`network name ${name} already used`, { kind: "network-exists" });
  }
  return { name, plugins };
}
