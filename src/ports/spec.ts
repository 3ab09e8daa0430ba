// `-p/--publish` values, parsed like podman v3 (cmd/podman/common
// CreatePortBindings, parseSplitPort, parseAndValidateRange) and expanded
// into one mapping per port, plus the text `burrow port` and `burrow ps`
// print. Pure: no namespace, no I/O.
import { isIPv4, isIPv6 } from "../ip-syntax.ts";
import * as v from "valibot";
import { BurrowError } from "../errors.ts";
import { quote } from "../quote.ts";

export const PROTOCOLS = ["tcp", "udp"] as const;
export type Protocol = (typeof PROTOCOLS)[number];

/** One published port. Same shape as the state's PortRecord. */
export const PortMappingSchema = v.object({
  /** "" = all addresses (shown as 0.0.0.0); else an IPv4 or IPv6 address. */
  hostIp: v.string(),
  /** 0 = pick a free port when publishing. */
  hostPort: v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(65535)),
  containerPort: v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(65535)),
  protocol: v.picklist(PROTOCOLS),
});
export type PortMapping = v.InferOutput<typeof PortMappingSchema>;

export const PUBLISH_FORMS =
  "CTRPORT[/PROTO], HOSTPORT:CTRPORT[/PROTO], HOSTIP:HOSTPORT:CTRPORT[/PROTO], HOSTIP::CTRPORT[/PROTO] or [IPV6]:HOSTPORT:CTRPORT[/PROTO], " +
  "where a port may be a range START-END of equal length on both sides and PROTO is tcp, udp or tcp,udp";

function bad(spec: string, why: string): BurrowError {
  return new BurrowError(`invalid -p ${quote(spec, 80)}: ${why}; accepted forms are ${PUBLISH_FORMS}`, { kind: "bad-input" });
}

/** "8080" or "8080-8090" -> [start, length]. */
function parseRange(spec: string, side: string, text: string): [number, number] {
  const parts = text.split("-");
  if (parts.length > 2) throw bad(spec, `${side} port ${quote(text)} has more than one "-"`);
  const port = (s: string) => {
    if (!/^\d+$/.test(s)) throw bad(spec, `${side} port ${quote(s)} is not a number`);
    const n = Number(s);
    if (n < 1 || n > 65535) throw bad(spec, `${side} port ${n} is not between 1 and 65535`);
    return n;
  };
  if (parts[0] === "") throw bad(spec, `${side} port ${quote(text)} has no start`);
  const start = port(parts[0]!);
  if (parts.length === 1) return [start, 1];
  if (parts[1] === "") throw bad(spec, `${side} port range ${quote(text)} has no end`);
  const end = port(parts[1]!);
  if (end <= start) throw bad(spec, `${side} port range ${text} must end above its start`);
  return [start, end - start + 1];
}

function parseProtocols(spec: string, text: string | undefined): Protocol[] {
  if (text === undefined) return ["tcp"];
  if (text === "") throw bad(spec, "the protocol after / is empty");
  const out: Protocol[] = [];
  for (const p of text.split(",")) {
    const lower = p.toLowerCase();
    if (lower === "sctp") throw bad(spec, "sctp is not supported (only tcp and udp)");
    if (lower !== "tcp" && lower !== "udp") throw bad(spec, `unknown protocol ${quote(p)}`);
    if (!out.includes(lower)) out.push(lower);
  }
  return out;
}

/**
 * Parses one -p value into one mapping per port and protocol. Host IP
 * 0.0.0.0 and an omitted one are both "" (all addresses), as podman does.
 */
export function parsePortSpec(spec: string): PortMapping[] {
  const slash = spec.split("/");
  if (slash.length > 2) throw bad(spec, "the protocol can only be given once");
  const protocols = parseProtocols(spec, slash[1]);
  let rest = slash[0]!;
  if (rest === "") throw bad(spec, "no container port");

  let hostIp: string | undefined;
  let bracketed = false;
  if (rest.startsWith("[") || rest.includes("]")) {
    const close = rest.indexOf("]");
    if (!rest.startsWith("[") || close < 0) throw bad(spec, "an IPv6 address must be enclosed in []");
    if (rest.indexOf("]", close + 1) >= 0) throw bad(spec, "only one IPv6 address can be given");
    hostIp = rest.slice(1, close);
    if (rest[close + 1] !== ":") throw bad(spec, "the IPv6 address must be followed by a colon");
    rest = rest.slice(close + 2);
    bracketed = true;
    if (!isIPv6(hostIp)) throw bad(spec, `${JSON.stringify(hostIp)} is not an IPv6 address`);
  }

  const parts = rest.split(":");
  let hostPortText: string | undefined;
  let ctrText: string;
  if (parts.length === 1) {
    if (bracketed) throw bad(spec, "with an IP address, give a host port (or leave it empty, as in [::1]::80) and a container port");
    ctrText = parts[0]!;
  } else if (parts.length === 2) {
    [hostPortText, ctrText] = parts as [string, string];
  } else if (parts.length === 3 && !bracketed) {
    let ipText: string;
    [ipText, hostPortText, ctrText] = parts as [string, string, string];
    if (ipText === "") throw bad(spec, "the host IP before the first colon is empty");
    if (!isIPv4(ipText)) {
      throw bad(spec, `${JSON.stringify(ipText)} is not an IPv4 address (write an IPv6 address in [], as in [::1]:8080:80)`);
    }
    hostIp = ipText;
  } else {
    throw bad(spec, bracketed ? "after [IPV6]: give HOSTPORT:CTRPORT" : "too many colons (an IPv6 address must be enclosed in [])");
  }

  if (ctrText === "") throw bad(spec, "no container port");
  const [ctrStart, ctrLen] = parseRange(spec, "container", ctrText);
  let hostStart = 0;
  if (hostPortText !== undefined && hostPortText !== "") {
    let hostLen: number;
    [hostStart, hostLen] = parseRange(spec, "host", hostPortText);
    if (hostLen !== ctrLen) throw bad(spec, `host and container port ranges have different lengths (${hostLen} and ${ctrLen})`);
  }
  if (hostIp === "0.0.0.0") hostIp = "";
  const out: PortMapping[] = [];
  for (const protocol of protocols) {
    for (let i = 0; i < ctrLen; i++) {
      out.push({ hostIp: hostIp ?? "", hostPort: hostStart === 0 ? 0 : hostStart + i, containerPort: ctrStart + i, protocol });
    }
  }
  return out;
}

/** Whether two host bindings would take the same socket. */
export function conflicts(a: PortMapping, b: PortMapping): boolean {
  if (a.protocol !== b.protocol || a.hostPort !== b.hostPort || a.hostPort === 0) return false;
  if (a.hostIp === b.hostIp) return true;
  // "" is 0.0.0.0, every IPv4 address (the forwarder's listenAddress);
  // "::" is dual-stack on Linux (bindv6only=0): every address of both families.
  if (a.hostIp === "::" || b.hostIp === "::") return true;
  const v4 = (ip: string) => ip === "" || isIPv4(ip);
  return (a.hostIp === "" && v4(b.hostIp)) || (b.hostIp === "" && v4(a.hostIp));
}

/** hostIp:hostPort as a user would type it: 0.0.0.0:8080, [::1]:8080. */
export function formatHostAddress(m: Pick<PortMapping, "hostIp" | "hostPort">): string {
  const ip = m.hostIp || "0.0.0.0";
  return ip.includes(":") ? `[${ip}]:${m.hostPort}` : `${ip}:${m.hostPort}`;
}

/** Most ports one sandbox may publish (each port of a range counts). */
export const DEFAULT_MAX_PORTS = 1024;

/** The limit: BURROW_MAX_PORTS (in the daemon's environment) or the default. */
export function maxPorts(env: Record<string, string | undefined> = process.env): number {
  const raw = env.BURROW_MAX_PORTS;
  if (raw === undefined || raw === "") return DEFAULT_MAX_PORTS;
  if (!/^\d{1,6}$/.test(raw) || Number(raw) < 1)
    throw new BurrowError(`invalid BURROW_MAX_PORTS ${JSON.stringify(raw.slice(0, 40))}: give a whole number of ports of at least 1`, { kind: "bad-input" });
  return Number(raw);
}

/**
 * Parses every -p value and refuses two that want the same host socket
 * (same protocol and port on the same address, or on all addresses), and
 * more than `max` ports in all: each host port costs a socket (an fd) in the
 * daemon, so a `-p 127.0.0.1::1-65535` must fail cleanly rather than exhaust
 * them (issue 10 item 6).
 */
export function parsePortSpecs(specs: readonly string[], max = maxPorts()): PortMapping[] {
  const out: PortMapping[] = [];
  for (const spec of specs) {
    const mappings = parsePortSpec(spec);
    if (out.length + mappings.length > max)
      throw new BurrowError(
        `-p ${quote(spec, 80)}: a sandbox can publish at most ${max} ports, and this makes ${out.length + mappings.length}; publish fewer, or raise the limit with BURROW_MAX_PORTS in the daemon's environment`,
        { kind: "bad-input" },
      );
    for (const m of mappings) {
      const clash = out.find((o) => conflicts(o, m));
      if (clash) {
        throw new BurrowError(
          `-p ${quote(spec, 80)}: host port ${formatHostAddress(m)}/${m.protocol} is already published for container port ${clash.containerPort}/${clash.protocol}; give each mapping its own host port`,
          { kind: "bad-input" },
        );
      }
      out.push(m);
    }
  }
  return out;
}

/** One line of `burrow port NAME`, as podman prints it: `80/tcp -> 0.0.0.0:8080`. */
export function formatPortLine(m: PortMapping): string {
  return `${m.containerPort}/${m.protocol} -> ${formatHostAddress(m)}`;
}

/**
 * `burrow port NAME [PORT[/PROTO]]`: every mapping as a line, or, with a
 * filter, only the host addresses of the matching mappings (podman prints
 * `0.0.0.0:8080`). Throws BurrowError when the filter matches nothing or is
 * malformed.
 */
export function formatPortLines(mappings: readonly PortMapping[], filter?: string): string[] {
  if (filter === undefined) return mappings.map(formatPortLine);
  const m = /^(\d+)(?:\/(tcp|udp))?$/.exec(filter);
  if (!m) throw new BurrowError(`invalid port ${JSON.stringify(filter)}: accepted forms are PORT, PORT/tcp or PORT/udp`, { kind: "bad-input" });
  const port = Number(m[1]);
  const protocol = (m[2] ?? "tcp") as Protocol;
  const hits = mappings.filter((x) => x.containerPort === port && x.protocol === protocol);
  if (hits.length === 0) throw new BurrowError(`failed to find published port "${port}/${protocol}"`, { kind: "not-found" });
  return hits.map(formatHostAddress);
}

/**
 * The PORTS column of `burrow ps`, podman style, with consecutive ports
 * folded into ranges: `0.0.0.0:8080-8081->80-81/tcp, 127.0.0.1:5353->53/udp`.
 */
export function formatPortsSummary(mappings: readonly PortMapping[]): string {
  const groups: Array<{ first: PortMapping; len: number }> = [];
  for (const m of mappings) {
    const g = groups.at(-1);
    if (
      g &&
      g.first.hostIp === m.hostIp &&
      g.first.protocol === m.protocol &&
      m.containerPort === g.first.containerPort + g.len &&
      g.first.hostPort !== 0 &&
      m.hostPort === g.first.hostPort + g.len
    ) {
      g.len++;
    } else {
      groups.push({ first: m, len: 1 });
    }
  }
  return groups
    .map(({ first, len }) => {
      const span = (start: number) => (len === 1 ? `${start}` : `${start}-${start + len - 1}`);
      const host = first.hostIp || "0.0.0.0";
      const hostText = host.includes(":") ? `[${host}]` : host;
      return `${hostText}:${span(first.hostPort)}->${span(first.containerPort)}/${first.protocol}`;
    })
    .join(", ");
}
