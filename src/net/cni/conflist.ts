// CNI network configuration lists (conflists) in podman v3's format: the
// valibot schemas that read them (podman's files, and ours) and the builders
// that write new ones exactly as podman v3's `network create` does
// (libpod/network/netconflist.go), so either tool reads the other's networks.
//
// Schemas are loose: unknown keys are kept, because every key of a plugin's
// object is passed to the plugin on stdin.
//
// Pure: no system access.
import { quote } from "../../quote.ts";
import { createHash } from "node:crypto";
import * as v from "valibot";
import { type Subnet, firstHost, formatIp, lastHost, subnetToString } from "./ip.ts";

/** Config versions whose results burrow understands (0.3.x/0.4.0 and 1.0.0 result shapes). */
export const SUPPORTED_CNI_VERSIONS = ["0.3.0", "0.3.1", "0.4.0", "1.0.0"] as const;
/** What `network create` writes: podman v3's version.Current(). */
export const CREATE_CNI_VERSION = "0.4.0";
/** podman v3's network name rule (libpod/define NameRegex). */
export const NETWORK_NAME_PATTERN = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
/** The key under "args" where podman v3 keeps network labels. */
export const LABELS_KEY = "podman_labels";
/** The dnsname plugin's domain for burrow's networks (podman: dns.podman). */
export const DNS_DOMAIN = "dns.burrow";

/** 255 (a file name) minus ".conflist". */
export const MAX_NETWORK_NAME = 246;

export const NetworkNameSchema = v.pipe(
  v.string(),
  v.regex(NETWORK_NAME_PATTERN, (i) => `invalid network name ${quote(i.input)}: use letters, digits, "_", "." and "-", starting with a letter or digit`),
  // NAME.conflist must fit a file name (255 bytes): longer failed with a raw ENAMETOOLONG.
  v.maxLength(
    MAX_NETWORK_NAME,
    (i) => `invalid network name ${quote(i.input)}: it is ${String(i.input).length} characters long; the limit is ${MAX_NETWORK_NAME}`,
  ),
  v.description("network name: [a-zA-Z0-9][a-zA-Z0-9_.-]*"),
);

export const IpamRangeSchema = v.looseObject({
  subnet: v.string(),
  rangeStart: v.optional(v.string()),
  rangeEnd: v.optional(v.string()),
  gateway: v.optional(v.string()),
});
export type IpamRange = v.InferOutput<typeof IpamRangeSchema>;

export const RouteSchema = v.looseObject({ dst: v.string(), gw: v.optional(v.string()) });

/** host-local (and dhcp/static) IPAM settings; only what burrow reads is typed. */
export const IpamSchema = v.looseObject({
  type: v.optional(v.string()),
  ranges: v.optional(v.array(v.array(IpamRangeSchema))),
  /** The deprecated single-range style (before ranges). */
  subnet: v.optional(v.string()),
  gateway: v.optional(v.string()),
  routes: v.optional(v.array(RouteSchema)),
  dataDir: v.optional(v.string()),
});

export const PluginConfSchema = v.looseObject({
  type: v.pipe(v.string(), v.minLength(1, "plugin type must not be empty"), v.description("the plugin executable's name")),
  capabilities: v.optional(v.pipe(v.record(v.string(), v.boolean()), v.description("runtimeConfig keys this plugin accepts"))),
  ipam: v.optional(IpamSchema),
});
export type PluginConf = v.InferOutput<typeof PluginConfSchema>;

export const ConflistSchema = v.looseObject({
  cniVersion: v.pipe(v.string(), v.minLength(1, "cniVersion must not be empty")),
  name: NetworkNameSchema,
  disableCheck: v.optional(v.boolean()),
  plugins: v.pipe(v.array(PluginConfSchema), v.minLength(1, "a network needs at least one plugin")),
  args: v.optional(v.looseObject({ [LABELS_KEY]: v.optional(v.record(v.string(), v.string())) })),
});
export type Conflist = v.InferOutput<typeof ConflistSchema>;

/** One line per issue, with its dotted path: `plugins.0.type: plugin type must not be empty`. */
export function describeIssues(issues: readonly v.BaseIssue<unknown>[]): string {
  return issues
    .map((issue) => {
      const path = v.getDotPath(issue);
      return path ? `${path}: ${issue.message}` : issue.message;
    })
    .join("; ");
}

/** podman v3's network ID: the sha256 of the name, hex (GetNetworkID). */
export function networkId(name: string): string {
  return createHash("sha256").update(name).digest("hex");
}

/** Every subnet a conflist's IPAM sections hand out (all range sets, plus the old `subnet` style). */
export function conflistRanges(conf: Conflist): IpamRange[] {
  const out: IpamRange[] = [];
  for (const plugin of conf.plugins) {
    const ipam = plugin.ipam;
    if (!ipam) continue;
    for (const set of ipam.ranges ?? []) out.push(...set);
    if (ipam.subnet) out.push({ subnet: ipam.subnet, gateway: ipam.gateway });
  }
  return out;
}

export const conflistLabels = (conf: Conflist): Record<string, string> => ({ ...(conf.args?.[LABELS_KEY] ?? {}) });

/** The bridge plugin's device name, if the network has one. */
export function conflistBridge(conf: Conflist): string | undefined {
  const bridge = conf.plugins.find((p) => p.type === "bridge");
  return typeof bridge?.bridge === "string" ? bridge.bridge : undefined;
}

// ---- builders: podman v3's netconflist.go, field for field ----

export interface RangeSpec {
  subnet: Subnet;
  gateway?: string;
  /** An IP range inside the subnet: host-local's rangeStart/rangeEnd are its first and last host. */
  ipRange?: Subnet;
}

/** NewIPAMLocalHostRange: one range set per subnet; the gateway defaults to the first host. */
export function hostLocalRange(spec: RangeSpec): IpamRange {
  const range: IpamRange = { subnet: subnetToString(spec.subnet) };
  if (spec.ipRange) {
    range.rangeStart = formatIp(spec.ipRange.family, firstHost(spec.ipRange).value);
    range.rangeEnd = formatIp(spec.ipRange.family, lastHost(spec.ipRange).value);
  }
  // Not needed by CNI, but podman writes it so that `network inspect` shows it.
  range.gateway = spec.gateway ?? formatIp(spec.subnet.family, firstHost(spec.subnet).value);
  return range;
}

export interface BridgeSpec {
  bridge: string;
  ranges: RangeSpec[];
  /** No gateway on the bridge, no masquerade, no default route. */
  internal: boolean;
  dns: boolean;
  mtu?: number;
  vlan?: number;
}

/** bridge + host-local, portmap, firewall, tuning[, dnsname]: what podman v3 writes for a bridge network. */
export function bridgePlugins(spec: BridgeSpec): PluginConf[] {
  const routes = spec.internal ? [] : [...new Set(spec.ranges.map((r) => r.subnet.family))].map((f) => ({ dst: f === 4 ? "0.0.0.0/0" : "::/0" }));
  const ipam: Record<string, unknown> = { type: "host-local" };
  if (routes.length > 0) ipam.routes = routes;
  ipam.ranges = spec.ranges.map((r) => [hostLocalRange(r)]);
  const bridge: Record<string, unknown> = { type: "bridge", bridge: spec.bridge, isGateway: !spec.internal };
  if (!spec.internal) bridge.ipMasq = true;
  if (spec.mtu) bridge.mtu = spec.mtu;
  bridge.hairpinMode = true;
  if (spec.vlan) bridge.vlan = spec.vlan;
  bridge.ipam = ipam;
  const plugins: PluginConf[] = [
    bridge as PluginConf,
    { type: "portmap", capabilities: { portMappings: true } },
    { type: "firewall", backend: "" },
    { type: "tuning" },
  ];
  if (spec.dns) plugins.push({ type: "dnsname", domainName: DNS_DOMAIN, capabilities: { aliases: true } });
  return plugins;
}

export interface MacvlanSpec {
  /** The host interface; empty lets the plugin use the default route's interface. */
  parent?: string;
  ranges: RangeSpec[];
  mtu?: number;
}

/** NewMacVLANPlugin: host-local when subnets are given, DHCP otherwise. */
export function macvlanPlugins(spec: MacvlanSpec): PluginConf[] {
  const ipam: Record<string, unknown> =
    spec.ranges.length === 0
      ? { type: "dhcp" }
      : {
          type: "host-local",
          routes: [...new Set(spec.ranges.map((r) => r.subnet.family))].map((f) => ({ dst: f === 4 ? "0.0.0.0/0" : "::/0" })),
          ranges: spec.ranges.map((r) => [hostLocalRange(r)]),
        };
  // "master" has no omitempty in podman's struct: "" lets the plugin use the default route's interface.
  const plugin: Record<string, unknown> = { type: "macvlan", master: spec.parent ?? "" };
  plugin.ipam = ipam;
  if (spec.mtu) plugin.mtu = spec.mtu;
  return [plugin as PluginConf];
}

/**
 * NewNcList: args.podman_labels (only when there are labels), cniVersion,
 * name, plugins. podman's list is a Go map, which encoding/json writes with
 * sorted keys, hence this order.
 */
export function buildConflist(name: string, plugins: PluginConf[], labels: Record<string, string> = {}): Conflist {
  const conf: Record<string, unknown> = {};
  if (Object.keys(labels).length > 0) conf.args = { [LABELS_KEY]: { ...labels } };
  conf.cniVersion = CREATE_CNI_VERSION;
  conf.name = name;
  conf.plugins = plugins;
  return conf as Conflist;
}

/** The bytes podman v3 writes (json.MarshalIndent with three spaces). */
export function conflistText(conf: Conflist): string {
  return JSON.stringify(conf, null, 3);
}
