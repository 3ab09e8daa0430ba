// The options of `--network slirp4netns[:opt=v,...]`, validated the way
// podman v3 does (libpod/networking_slirp4netns.go parseSlirp4netnsNetworkOptions),
// with messages that name the bad value and what is accepted.
//
// Pure: nothing here touches the system except `parseSlirp4netnsOptions`'s
// interface check (outbound_addr=IFACE), which reads /sys/class/net of the
// caller's network namespace (call it from the host namespace).
import { reservedOverlap } from "../reserved.ts";
import { parseCidr } from "../cni/ip.ts";
import { existsSync } from "node:fs";
import { isIPv4, isIPv6 } from "../../ip-syntax.ts";
import * as v from "valibot";
import { BurrowError } from "../../errors.ts";
import { quote } from "../../quote.ts";

/** podman's slirp4netnsMTU: the MTU burrow asks for unless told otherwise. */
export const DEFAULT_MTU = 65520;
/** podman's defaultSlirp4netnsSubnet (also slirp4netns's own default). */
export const DEFAULT_CIDR = "10.0.2.0/24";
/** slirp4netns's fixed IPv6 network when --enable-ipv6 is given. */
export const IPV6_PREFIX = "fd00::";

const ACCEPTED: Record<string, string> = {
  cidr: "an IPv4 network with a prefix length of 1-25, such as 10.0.2.0/24",
  port_handler: "rootlesskit or slirp4netns",
  allow_host_loopback: "true or false",
  enable_ipv6: "true or false",
  outbound_addr: "an IPv4 address or the name of an existing network interface",
  outbound_addr6: "an IPv6 address or the name of an existing network interface",
  // 68 is IPv4's minimum (podman's lower bound); 65521 is slirp4netns's maximum.
  mtu: "an integer from 68 to 65521",
  source_ip: "true or false",
};
export const OPTION_NAMES = Object.keys(ACCEPTED);

const bad = (name: string) => (issue: { input: unknown }) =>
  `invalid slirp4netns option ${name}=${quote(issue.input, 80)}: accepted values are ${ACCEPTED[name]}`;

/** Linux's dev_valid_name(): what the kernel would accept as an interface name. */
export function isInterfaceName(name: string): boolean {
  return name.length > 0 && name.length < 16 && name !== "." && name !== ".." && !/[/:\s]/.test(name);
}

/** `a.b.c.d/n`, prefix 1-25: slirp4netns needs room for .100 (the tap address). */
export function isSlirpCidr(value: string): boolean {
  const m = /^([0-9.]+)\/(\d{1,2})$/.exec(value);
  if (!m || !isIPv4(m[1]!)) return false;
  const prefix = Number(m[2]);
  return prefix >= 1 && prefix <= 25;
}

/** Why a cidr= value overlaps a reserved range, or null (also for one that is no CIDR: other checks say so). */
function reservedCidr(value: string): string | null {
  const parsed = parseCidr(value);
  return parsed ? reservedOverlap(parsed.subnet, { slirpInternal: false }) : null;
}

const bool = (name: string, fallback: "true" | "false" = "false") =>
  v.optional(
    v.pipe(
      v.string(),
      v.picklist(["true", "false"], bad(name)),
      v.transform((s) => s === "true"),
    ),
    fallback,
  );

/**
 * The raw option map (option name -> string value, as typed by the user) and
 * its conversion to `Slirp4netnsOptions`. The single source of truth for what
 * the slirp4netns mode accepts.
 */
export const Slirp4netnsOptionsSchema = v.pipe(
  v.strictObject({
    cidr: v.optional(
      v.pipe(
        v.string(),
        v.check(isSlirpCidr, bad("cidr")),
        // slirp4netns itself refuses host bits ("CIDR needs to be a network
        // address"); say so before spawning it.
        v.check(
          (s) => canonicalCidr(s) === s,
          (issue) =>
            `invalid slirp4netns option cidr=${JSON.stringify(issue.input)}: host bits are set; write the network address, ${canonicalCidr(String(issue.input))}`,
        ),
        v.check(
          (s) => reservedCidr(s) === null,
          (issue) =>
            `invalid slirp4netns option cidr=${JSON.stringify(issue.input)}: ${reservedCidr(String(issue.input))}; use a private range such as 10.0.2.0/24`,
        ),
        v.description("IPv4 network of the sandbox (podman: cidr=)"),
      ),
    ),
    port_handler: v.optional(
      v.pipe(v.string(), v.picklist(["rootlesskit", "slirp4netns"], bad("port_handler")), v.description("who forwards published ports")),
      "rootlesskit",
    ),
    allow_host_loopback: bool("allow_host_loopback"),
    enable_ipv6: bool("enable_ipv6"),
    outbound_addr: v.optional(
      v.pipe(
        v.string(),
        v.check((s) => isIPv4(s) || isInterfaceName(s), bad("outbound_addr")),
      ),
    ),
    outbound_addr6: v.optional(
      v.pipe(
        v.string(),
        v.check((s) => (isIPv6(s) && !isIPv4Mapped(s)) || (isInterfaceName(s) && !isIPv4(s)), bad("outbound_addr6")),
      ),
    ),
    mtu: v.optional(
      v.pipe(v.string(), v.regex(/^\d{1,5}$/, bad("mtu")), v.transform(Number), v.minValue(68, bad("mtu")), v.maxValue(65521, bad("mtu"))),
      String(DEFAULT_MTU),
    ),
    // burrow's own (podman has none): the builtin forwarder hands the sandbox each TCP client's own address.
    source_ip: bool("source_ip", "true"),
  }),
  v.check((o) => o.outbound_addr6 === undefined || o.enable_ipv6, "slirp4netns option outbound_addr6 needs enable_ipv6=true"),
  v.transform((o) => ({
    /** A network address/prefix; undefined means slirp4netns's default 10.0.2.0/24. */
    cidr: o.cidr,
    portHandler: o.port_handler,
    allowHostLoopback: o.allow_host_loopback,
    enableIPv6: o.enable_ipv6,
    outboundAddr: o.outbound_addr,
    outboundAddr6: o.outbound_addr6,
    mtu: o.mtu,
    /** The builtin forwarder lets the sandbox see TCP clients' own addresses (src/ports/client-address.ts). */
    sourceIp: o.source_ip,
  })),
);
export type Slirp4netnsOptions = v.InferOutput<typeof Slirp4netnsOptionsSchema>;
export type Slirp4netnsRawOptions = v.InferInput<typeof Slirp4netnsOptionsSchema>;

function isIPv4Mapped(s: string): boolean {
  // Go's ParseIP(x).To4() != nil for ::ffff:a.b.c.d, which podman rejects as outbound_addr6.
  return /^::ffff:(\d+\.){3}\d+$/i.test(s);
}

export interface ParseOptions {
  /**
   * Whether a network interface exists (outbound_addr=NAME). Default: looks
   * in /sys/class/net, i.e. the caller's network namespace, like podman's
   * net.InterfaceByName.
   */
  interfaceExists?: (name: string) => boolean;
}

const sysInterfaceExists = (name: string) => existsSync(`/sys/class/net/${name}`);

/**
 * Parses the option list of a slirp4netns network mode (the part after
 * `slirp4netns:`, already split on commas). Like podman, a repeated option
 * takes its last value. Throws BurrowError on the first bad option.
 */
export function parseSlirp4netnsOptions(list: readonly string[], opts: ParseOptions = {}): Slirp4netnsOptions {
  const raw: Record<string, string> = {};
  for (const item of list) {
    const eq = item.indexOf("=");
    if (eq < 0) {
      const what = item === "" ? "an empty option" : `option ${JSON.stringify(item)}`;
      throw new BurrowError(`slirp4netns ${what} has no value: write NAME=VALUE with NAME one of ${OPTION_NAMES.join(", ")}`, {
        kind: "bad-input",
      });
    }
    const name = item.slice(0, eq);
    if (!(name in ACCEPTED)) {
      throw new BurrowError(`unknown slirp4netns option ${JSON.stringify(name)}: accepted options are ${OPTION_NAMES.join(", ")}`, {
        kind: "bad-input",
      });
    }
    raw[name] = item.slice(eq + 1);
  }
  const result = v.safeParse(Slirp4netnsOptionsSchema, raw, { abortEarly: true });
  if (!result.success) {
    throw new BurrowError(result.issues[0].message, { kind: "bad-input" });
  }
  const out = result.output;
  const exists = opts.interfaceExists ?? sysInterfaceExists;
  if (out.outboundAddr !== undefined && !isIPv4(out.outboundAddr) && !exists(out.outboundAddr)) {
    throw new BurrowError(
      `invalid slirp4netns option outbound_addr=${JSON.stringify(out.outboundAddr)}: no such network interface; accepted values are ${ACCEPTED.outbound_addr}`,
      { kind: "bad-input" },
    );
  }
  if (out.outboundAddr6 !== undefined && !isIPv6(out.outboundAddr6) && !exists(out.outboundAddr6)) {
    throw new BurrowError(
      `invalid slirp4netns option outbound_addr6=${JSON.stringify(out.outboundAddr6)}: no such network interface; accepted values are ${ACCEPTED.outbound_addr6}`,
      { kind: "bad-input" },
    );
  }
  return out;
}

/**
 * Parses a whole network mode string `slirp4netns` or `slirp4netns:opt=v,...`.
 * Returns null when the mode is not slirp4netns at all.
 */
export function parseSlirp4netnsMode(mode: string, opts: ParseOptions = {}): Slirp4netnsOptions | null {
  if (mode === "slirp4netns") return parseSlirp4netnsOptions([], opts);
  if (!mode.startsWith("slirp4netns:")) return null;
  return parseSlirp4netnsOptions(mode.slice("slirp4netns:".length).split(","), opts);
}

// ---- addresses -------------------------------------------------------------

export function ipv4ToInt(ip: string): number {
  return ip.split(".").reduce((acc, octet) => acc * 256 + Number(octet), 0);
}

export function intToIPv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff].join(".");
}

/** `10.0.2.5/24` -> `10.0.2.0/24`. The input must pass isSlirpCidr. */
export function canonicalCidr(cidr: string): string {
  const [addr, len] = cidr.split("/") as [string, string];
  const prefixLength = Number(len);
  const mask = (0xffffffff << (32 - prefixLength)) >>> 0;
  return `${intToIPv4((ipv4ToInt(addr) & mask) >>> 0)}/${prefixLength}`;
}

export interface Slirp4netnsAddresses {
  /** The network in canonical form, e.g. "10.0.2.0/24". */
  cidr: string;
  network: string;
  prefixLength: number;
  /** The sandbox's own address on tap0: network + 100. */
  tapAddress: string;
  /** slirp4netns's gateway (the host, as seen from the sandbox): network + 2. */
  gateway: string;
  /** slirp4netns's DNS forwarder: network + 3. */
  dns: string;
  /** Present when enable_ipv6=true: slirp4netns's fixed fd00::/64 addresses. */
  ipv6?: { cidr: string; prefixLength: number; tapAddress: string; gateway: string; dns: string };
}

/**
 * The addresses slirp4netns will configure (podman's GetSlirp4netnsIP,
 * GetSlirp4netnsGateway, GetSlirp4netnsDNS: base of the network + 100/2/3).
 */
export function slirp4netnsAddresses(options: Pick<Slirp4netnsOptions, "cidr" | "enableIPv6">): Slirp4netnsAddresses {
  const cidr = options.cidr ?? DEFAULT_CIDR;
  if (!isSlirpCidr(cidr)) throw new BurrowError(bad("cidr")({ input: cidr }), { kind: "bad-input" });
  const [network, len] = canonicalCidr(cidr).split("/") as [string, string];
  const prefixLength = Number(len);
  const base = ipv4ToInt(network);
  const out: Slirp4netnsAddresses = {
    cidr: `${intToIPv4(base)}/${prefixLength}`,
    network: intToIPv4(base),
    prefixLength,
    tapAddress: intToIPv4(base + 100),
    gateway: intToIPv4(base + 2),
    dns: intToIPv4(base + 3),
  };
  if (options.enableIPv6) {
    out.ipv6 = {
      cidr: `${IPV6_PREFIX}/64`,
      prefixLength: 64,
      tapAddress: `${IPV6_PREFIX}100`,
      gateway: `${IPV6_PREFIX}2`,
      dns: `${IPV6_PREFIX}3`,
    };
  }
  return out;
}
