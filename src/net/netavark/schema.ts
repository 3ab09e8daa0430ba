// The shapes netavark and podman exchange (docs/netavark.md): podman 4-6's
// network files, the options netavark reads on stdin for setup/teardown, the
// status it answers, its error line and `netavark version`. Checked against
// netavark 1.4 (Debian 12) and 1.17/2.x source (src/network/types.rs) and
// against files podman 5.8 wrote (test/fixtures/netavark/).
//
// Anything read from outside (a network file, netavark's stdout) is validated
// here before use. Objects are loose: podman and netavark add fields between
// versions, and a field burrow does not know is kept, never dropped.
//
// Pure: no system access.
import * as v from "valibot";
import { parseCidr, parseIp } from "../cni/ip.ts";
import { quote } from "../../quote.ts";

/** podman's network name rule (libpod/define NameRegex), the same for CNI and netavark. */
export const NETWORK_NAME_PATTERN = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
/** 255 (a file name) minus ".json". */
export const MAX_NETWORK_NAME = 250;

export const NetworkName = v.pipe(
  v.string(),
  v.regex(
    NETWORK_NAME_PATTERN,
    (i) => `invalid network name ${quote(String(i.input))}: use letters, digits, "_", "." and "-", starting with a letter or digit`,
  ),
  v.maxLength(
    MAX_NETWORK_NAME,
    (i) => `invalid network name ${quote(String(i.input))}: it is ${String(i.input).length} characters long; the limit is ${MAX_NETWORK_NAME}`,
  ),
);

/** podman's network ids: 64 lower-case hex digits (sha256-sized, random; the default's is sha256("podman")). */
export const NetworkId = v.pipe(
  v.string(),
  v.regex(/^[0-9a-f]{64}$/, (i) => `invalid network id ${quote(String(i.input))}: 64 hex digits expected`),
);

export const IpText = v.pipe(
  v.string(),
  v.check(
    (s) => parseIp(s) !== null,
    (i) => `${quote(String(i.input))} is not an IP address`,
  ),
);

export const CidrText = v.pipe(
  v.string(),
  v.check(
    (s) => parseCidr(s) !== null,
    (i) => `${quote(String(i.input))} is not a CIDR subnet`,
  ),
);

const StringMap = v.record(v.string(), v.string());

export const LeaseRange = v.looseObject({
  start_ip: v.optional(IpText),
  end_ip: v.optional(IpText),
});

export const NetworkSubnet = v.looseObject({
  subnet: CidrText,
  gateway: v.optional(IpText),
  lease_range: v.optional(LeaseRange),
});
export type NetworkSubnet = v.InferOutput<typeof NetworkSubnet>;

export const NetworkRoute = v.looseObject({
  destination: CidrText,
  gateway: v.optional(IpText),
  metric: v.optional(v.number()),
  route_type: v.optional(v.string()),
});

/**
 * One network file, `NAME.json` (podman's types.Network as JSON). The three
 * booleans are optional here because Go omits nothing but a hand-written
 * file may; netavark itself requires them, so the options builder fills
 * them in (false, as Go reads a missing bool).
 */
export const NetworkFile = v.looseObject({
  name: NetworkName,
  id: NetworkId,
  driver: v.pipe(v.string(), v.minLength(1, "driver is empty")),
  network_interface: v.optional(v.string()),
  /** RFC 3339 with nanoseconds, as Go writes time.Time. */
  created: v.optional(v.string()),
  subnets: v.optional(v.array(NetworkSubnet)),
  routes: v.optional(v.array(NetworkRoute)),
  ipv6_enabled: v.optional(v.boolean()),
  internal: v.optional(v.boolean()),
  dns_enabled: v.optional(v.boolean()),
  network_dns_servers: v.optional(v.array(IpText)),
  labels: v.optional(StringMap),
  options: v.optional(StringMap),
  ipam_options: v.optional(StringMap),
});
export type NetworkFile = v.InferOutput<typeof NetworkFile>;

// ------------------------------------------------------------ setup options

const Port = v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(65535));

/** netavark's PerNetworkOptions: how one sandbox joins one network. */
export const PerNetworkOptions = v.object({
  aliases: v.optional(v.array(v.string())),
  interface_name: v.pipe(v.string(), v.minLength(1, "interface_name is empty")),
  /** Required with host-local IPAM: netavark does not allocate addresses, its caller does. */
  static_ips: v.optional(v.array(IpText)),
  static_mac: v.optional(v.string()),
  options: v.optional(StringMap),
});
export type PerNetworkOptions = v.InferOutput<typeof PerNetworkOptions>;

/** netavark's PortMapping; `range` counts ports (1 = one port), as podman sends it. */
export const PortMapping = v.object({
  container_port: Port,
  host_ip: v.string(),
  host_port: Port,
  protocol: v.picklist(["tcp", "udp", "sctp"]),
  range: v.pipe(v.number(), v.integer(), v.minValue(1)),
});
export type PortMapping = v.InferOutput<typeof PortMapping>;

/**
 * What netavark setup/teardown read on stdin (NetworkOptions). `networks` is
 * a map keyed by network name: netavark 1.4 reads only that form (1.17+ also
 * takes an array, for ordering).
 */
export const SetupOptions = v.object({
  container_id: v.pipe(v.string(), v.minLength(1)),
  container_name: v.pipe(v.string(), v.minLength(1)),
  container_hostname: v.optional(v.string()),
  networks: v.record(v.string(), PerNetworkOptions),
  network_info: v.record(v.string(), NetworkFile),
  port_mappings: v.optional(v.array(PortMapping)),
  dns_servers: v.optional(v.array(IpText)),
});
export type SetupOptions = v.InferOutput<typeof SetupOptions>;

// ------------------------------------------------------------ replies

/** netavark's NetAddress; Go/serde write an absent gateway as null. */
export const NetAddress = v.looseObject({
  ipnet: CidrText,
  gateway: v.nullish(IpText),
});

export const NetInterface = v.looseObject({
  mac_address: v.string(),
  subnets: v.nullish(v.array(NetAddress)),
});
export type NetInterface = v.InferOutput<typeof NetInterface>;

/** One network's StatusBlock: its interfaces in the sandbox (by name), and DNS for resolv.conf. */
export const StatusBlock = v.looseObject({
  interfaces: v.nullish(v.record(v.string(), NetInterface)),
  dns_server_ips: v.nullish(v.array(IpText)),
  dns_search_domains: v.nullish(v.array(v.string())),
});
export type StatusBlock = v.InferOutput<typeof StatusBlock>;

/** setup's stdout on success: network name -> StatusBlock. */
export const SetupReply = v.record(v.string(), StatusBlock);
export type SetupReply = v.InferOutput<typeof SetupReply>;

/** What netavark prints on stdout before exiting non-zero (NetavarkError::print_json). */
export const ErrorReply = v.looseObject({ error: v.string() });

/** `netavark version` (every version prints version, commit, build_time, target; later ones, 1.17 among them, add default_fw_driver). */
export const VersionReply = v.looseObject({
  version: v.pipe(v.string(), v.regex(/^\d+\.\d+\.\d+/, "version is not x.y.z")),
  commit: v.optional(v.string()),
  build_time: v.optional(v.string()),
  target: v.optional(v.string()),
  default_fw_driver: v.optional(v.string()),
});
export type VersionReply = v.InferOutput<typeof VersionReply>;
