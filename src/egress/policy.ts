// Egress rules (issue 18; docs/egress.md): what a user writes with
// --allow-host, --allow-cidr, --deny-cidr and --egress-log-only, the valibot
// schema a sandbox's spec keeps them in, and the one verdict function that
// the nftables ruleset (nft.ts), the resolver and --accelerate's supervisor
// all agree with. Pure: no system access. Not wired to the CLI yet.
import { type EgressFlags, hasEgressFlags } from "./flags.ts";
import * as v from "valibot";
import { BurrowError } from "../errors.ts";
import { type IpAddress, parseCidr, parseIp, type Subnet, subnetContains, subnetToString } from "../net/cni/ip.ts";
import { quote } from "../quote.ts";
import { type HostPattern, parseHostPattern } from "./names.ts";

export const PROTOCOLS = ["tcp", "udp"] as const;
export type Protocol = (typeof PROTOCOLS)[number];
export const PRESETS = ["private", "host"] as const;
export type Preset = (typeof PRESETS)[number];

/** At most this many rules in one policy: each is an nftables rule, and the spec keeps them all. */
export const MAX_RULES = 256;

/**
 * `private`: the ranges no public name should point into, and where a
 * sandbox's neighbours live. RFC 1918, CGNAT (RFC 6598: carrier NAT, and
 * Tailscale's and clouds' internal addresses), link-local with the cloud
 * metadata address, ULA with AWS's IPv6 metadata address, and the IPv4
 * ranges' embeddings in the NAT64 well-known prefix (RFC 6052: on an
 * IPv6-only network with NAT64, 64:ff9b::10.0.0.1 reaches 10.0.0.1; the
 * prefix is 96 + the IPv4 prefix). The metadata addresses lie inside the
 * wider ranges; they are listed so `inspect` and the docs name them.
 */
export const PRIVATE_RANGES = [
  "10.0.0.0/8",
  "172.16.0.0/12",
  "192.168.0.0/16",
  "100.64.0.0/10",
  "169.254.0.0/16",
  "169.254.169.254/32",
  "fc00::/7",
  "fe80::/10",
  "fd00:ec2::254/128",
  "64:ff9b::10.0.0.0/104",
  "64:ff9b::172.16.0.0/108",
  "64:ff9b::192.168.0.0/112",
  "64:ff9b::100.64.0.0/106",
  "64:ff9b::169.254.0.0/112",
] as const;

/**
 * Never learned from a DNS answer unless an allow rule names them: loopback,
 * "this network", link-local, multicast, broadcast, the unspecified and
 * IPv4-mapped/compatible IPv6 forms (a socket connects to ::ffff:a.b.c.d
 * over IPv4, behind the IPv6 set's back). With PRIVATE_RANGES, the ranges a
 * rebinding answer aims at.
 */
export const NEVER_LEARNED = [
  "127.0.0.0/8",
  "0.0.0.0/8",
  "169.254.0.0/16",
  "224.0.0.0/4",
  "240.0.0.0/4",
  "::1/128",
  "::/96",
  "::ffff:0:0/96",
  "fe80::/10",
  "ff00::/8",
] as const;

/** The sandbox's own loopback: not egress, never refused (nft.ts accepts `oif lo` first). */
const LOOPBACK = ["127.0.0.0/8", "::1/128"] as const;

const subnetsOf = (cidrs: readonly string[]): Subnet[] => cidrs.map((c) => parseCidr(c)!.subnet);
const PRIVATE_SUBNETS = subnetsOf(PRIVATE_RANGES);
const NEVER_LEARNED_SUBNETS = subnetsOf(NEVER_LEARNED);
const LOOPBACK_SUBNETS = subnetsOf(LOOPBACK);

/** RFC 6052's well-known NAT64 prefix: a NAT64 gateway takes 64:ff9b::a.b.c.d to a.b.c.d (the last 32 bits). */
export const NAT64_WELL_KNOWN = "64:ff9b::/96";
/**
 * RFC 8215's local-use NAT64 prefix: the operator chooses the prefix length
 * inside it, and with it where the IPv4 address sits (RFC 6052's /32../96
 * formats), so the address it reaches cannot be read off an address in it.
 */
export const NAT64_LOCAL_USE = "64:ff9b:1::/48";
const [NAT64_WELL_KNOWN_SUBNET, NAT64_LOCAL_USE_SUBNET] = subnetsOf([NAT64_WELL_KNOWN, NAT64_LOCAL_USE]) as [Subnet, Subnet];

/** The IPv4 address a NAT64 gateway takes a well-known-prefix address to, or null outside the prefix. */
export function nat64Embedded(ip: IpAddress): IpAddress | null {
  return subnetContains(NAT64_WELL_KNOWN_SUBNET, ip) ? { family: 4, value: ip.value & 0xffffffffn } : null;
}

// ---------------------------------------------------------------- schemas

const Port = v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(65535));
export const PortRange = v.pipe(
  v.object({ from: Port, to: Port }),
  v.check((r) => r.from <= r.to, "a port range's first port is above its last"),
);
export type PortRange = v.InferOutput<typeof PortRange>;

const Ports = v.optional(v.pipe(v.array(PortRange), v.minLength(1), v.maxLength(64)));
const ProtocolSchema = v.optional(v.picklist(PROTOCOLS));

export const HostRule = v.object({
  kind: v.literal("host"),
  pattern: v.pipe(
    v.string(),
    v.check((s) => typeof parseHostPattern(s) !== "string", "not a host name or *.name pattern"),
  ),
  ports: Ports,
  protocol: ProtocolSchema,
});
export const CidrRule = v.object({
  kind: v.literal("cidr"),
  /** Canonical (`10.1.0.0/16`, `2001:db8::/32`): a bare address is kept as /32 or /128. */
  cidr: v.pipe(
    v.string(),
    v.check((s) => canonicalCidr(s) === s, "not a canonical CIDR"),
  ),
  ports: Ports,
  protocol: ProtocolSchema,
});
export const PresetRule = v.object({
  kind: v.literal("preset"),
  preset: v.picklist(PRESETS),
  ports: Ports,
  protocol: ProtocolSchema,
});
export const AllowRule = v.variant("kind", [HostRule, CidrRule, PresetRule]);
export const DenyRule = v.variant("kind", [CidrRule, PresetRule]);
export type HostRule = v.InferOutput<typeof HostRule>;
export type AllowRule = v.InferOutput<typeof AllowRule>;
export type DenyRule = v.InferOutput<typeof DenyRule>;
export type Rule = AllowRule | DenyRule;

/** A sandbox's egress policy as its spec keeps it (presets unexpanded: `host` is resolved at each start). */
export const EgressPolicy = v.pipe(
  v.object({
    allow: v.array(AllowRule),
    deny: v.array(DenyRule),
    /** --egress-log-only: every would-be refusal is reported, none is made. */
    logOnly: v.boolean(),
  }),
  v.check((p) => p.allow.length + p.deny.length <= MAX_RULES, `more than ${MAX_RULES} rules`),
);
export type EgressPolicy = v.InferOutput<typeof EgressPolicy>;

function canonicalCidr(text: string): string | null {
  const parsed = parseCidr(text.includes("/") ? text : `${text}/${text.includes(":") ? 128 : 32}`);
  return parsed ? subnetToString(parsed.subnet) : null;
}

// ---------------------------------------------------------------- flags

export { type EgressFlags, hasEgressFlags } from "./flags.ts";

const PORTS_HELP = "PORTS is 443, 8000-8080 or a list such as 80,443";
const CIDR_HELP = `accepted: a CIDR (10.1.0.0/16, 2001:db8::/32), an address, [IPv6] or the preset private or host, then optionally :PORTS and /tcp or /udp; ${PORTS_HELP}`;
const HOST_HELP = `accepted: a host name (pypi.org) or *.name (*.pythonhosted.org), then optionally :PORTS and /tcp or /udp; ${PORTS_HELP}`;

function refuse(flag: string, value: string, problem: string, help: string): never {
  throw new BurrowError(`invalid ${flag} ${quote(value)}: ${problem}; ${help}`, { kind: "bad-input" });
}

/** `443`, `8000-8080`, `80,443,8000-8080`; the problem as a string. */
export function parsePorts(text: string): PortRange[] | string {
  if (text === "") return "no ports after ':'";
  const ranges: PortRange[] = [];
  for (const part of text.split(",")) {
    const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(part);
    if (!m) return `${JSON.stringify(part)} is not a port or a range`;
    const from = Number(m[1]);
    const to = m[2] === undefined ? from : Number(m[2]);
    if (from < 1 || to > 65535) return `port ${from < 1 ? from : to} is outside 1-65535`;
    if (from > to) return `the range ${part} runs backwards`;
    ranges.push({ from, to });
  }
  if (ranges.length > 64) return "more than 64 ports or ranges";
  return ranges;
}

/** Splits off a trailing /tcp or /udp. */
function splitProtocol(text: string): { rest: string; protocol?: Protocol } {
  const m = /^(.*)\/(tcp|udp)$/i.exec(text);
  return m ? { rest: m[1]!, protocol: m[2]!.toLowerCase() as Protocol } : { rest: text };
}

function withPorts<T extends object>(flag: string, value: string, base: T, portText: string | undefined, protocol: Protocol | undefined, help: string) {
  let ports: PortRange[] | undefined;
  if (portText !== undefined) {
    const parsed = parsePorts(portText);
    if (typeof parsed === "string") refuse(flag, value, parsed, help);
    ports = parsed;
  }
  return { ...base, ...(ports ? { ports } : {}), ...(protocol ? { protocol } : {}) };
}

/** One --allow-host value. */
export function parseAllowHost(value: string): HostRule {
  const flag = "--allow-host";
  const { rest, protocol } = splitProtocol(value.trim());
  const colon = rest.indexOf(":");
  const name = colon < 0 ? rest : rest.slice(0, colon);
  const pattern = parseHostPattern(name);
  if (typeof pattern === "string") refuse(flag, value, pattern, HOST_HELP);
  return withPorts(flag, value, { kind: "host" as const, pattern: pattern.pattern }, colon < 0 ? undefined : rest.slice(colon + 1), protocol, HOST_HELP);
}

/** One --allow-cidr or --deny-cidr value (`flag` names which, for the error). */
export function parseCidrFlag(value: string, flag: "--allow-cidr" | "--deny-cidr"): v.InferOutput<typeof CidrRule> | v.InferOutput<typeof PresetRule> {
  const { rest, protocol } = splitProtocol(value.trim());
  let target: string;
  let portText: string | undefined;
  if (rest.startsWith("[")) {
    // [2001:db8::1]:443 or [2001:db8::/32]:443: brackets, as in URLs, when an IPv6 target has ports.
    const m = /^\[([^\]]+)\](?::(.*))?$/.exec(rest);
    if (!m) refuse(flag, value, "an unclosed '[' or text after ']' that is not :PORTS", CIDR_HELP);
    [target, portText] = [m[1]!, m[2]];
  } else if (rest.includes("/")) {
    const m = /^([^/]+\/\d{1,3})(?::(.*))?$/.exec(rest);
    if (!m) refuse(flag, value, "not ADDRESS/PREFIX[:PORTS]", CIDR_HELP);
    [target, portText] = [m[1]!, m[2]];
  } else {
    // No prefix: a preset or IPv4 address may take :PORTS; a bare IPv6 address may not (its colons).
    const m = /^(private|host|\d+\.\d+\.\d+\.\d+):(.*)$/i.exec(rest);
    [target, portText] = m ? [m[1]!, m[2]] : [rest, undefined];
  }
  const preset = target.toLowerCase();
  if ((PRESETS as readonly string[]).includes(preset))
    return withPorts(flag, value, { kind: "preset" as const, preset: preset as Preset }, portText, protocol, CIDR_HELP);
  const cidr = canonicalCidr(target);
  if (!cidr) refuse(flag, value, `${JSON.stringify(target)} is not an address, a CIDR or a preset`, CIDR_HELP);
  return withPorts(flag, value, { kind: "cidr" as const, cidr }, portText, protocol, CIDR_HELP);
}

/** The policy of a `run`'s flags, or null when none was given (today's behaviour). */
export function parseEgressFlags(f: EgressFlags): EgressPolicy | null {
  if (!hasEgressFlags(f)) return null;
  const allow: AllowRule[] = [...f.allowHost.map(parseAllowHost), ...f.allowCidr.map((c) => parseCidrFlag(c, "--allow-cidr"))];
  const deny: DenyRule[] = f.denyCidr.map((c) => parseCidrFlag(c, "--deny-cidr"));
  if (allow.length + deny.length === 0)
    throw new BurrowError("--egress-log-only needs a rule to log: add --allow-host, --allow-cidr or --deny-cidr", { kind: "bad-input" });
  if (allow.length + deny.length > MAX_RULES)
    throw new BurrowError(`too many egress rules (${allow.length + deny.length}): at most ${MAX_RULES}; use wider CIDRs or *.name patterns`, {
      kind: "bad-input",
    });
  return { allow, deny, logOnly: f.logOnly };
}

const portsText = (ports?: readonly PortRange[]) => (ports ? `:${ports.map((r) => (r.from === r.to ? `${r.from}` : `${r.from}-${r.to}`)).join(",")}` : "");

/** A rule as the flag that makes it, canonical: what `inspect` and refusal events show. */
export function ruleText(rule: Rule, action: "allow" | "deny"): string {
  const tail = `${portsText(rule.ports)}${rule.protocol ? `/${rule.protocol}` : ""}`;
  if (rule.kind === "host") return `--allow-host ${rule.pattern}${tail}`;
  const target = rule.kind === "preset" ? rule.preset : rule.cidr;
  const bracketed = rule.kind === "cidr" && target.includes(":") && rule.ports ? `[${target}]` : target;
  return `--${action}-cidr ${bracketed}${tail}`;
}

// ---------------------------------------------------------------- compiled

/** What a policy needs from the machine at each start: the `host` preset's addresses. */
export interface PolicyContext {
  /** The host's own addresses as the sandbox reaches them: its interfaces', the host-loopback alias (10.0.2.2, pasta's mapped address), bridge gateways. */
  hostAddresses: readonly string[];
  /** The sandbox's own addresses: traffic to them stays on its loopback (nft.ts accepts `oif lo`), so no rule applies. */
  sandboxAddresses?: readonly string[];
}

export interface CompiledRule {
  action: "allow" | "deny";
  /** Position in the policy's allow or deny list. */
  index: number;
  /** `allow[2]`, `deny[0]`: nft.ts's log prefixes carry it, events map it back to `text`. */
  id: string;
  text: string;
  /** The ranges it covers; null for a host rule (its addresses are learned from DNS answers). */
  subnets: Subnet[] | null;
  pattern?: HostPattern;
  ports?: readonly PortRange[];
  protocol?: Protocol;
}

export interface CompiledPolicy {
  deny: CompiledRule[];
  allow: CompiledRule[];
  /** Host-rule patterns, each with its index in `allow`. */
  hosts: { pattern: HostPattern; allowIndex: number }[];
  logOnly: boolean;
  /** The sandbox's own addresses, as /32 or /128: never egress. */
  own: Subnet[];
  /**
   * The host's own addresses (PolicyContext.hostAddresses), as /32 or /128:
   * never learned from a DNS answer once an allow rule exists, unless an
   * allow rule covers them (`--allow-cidr host`), or an allowed name could
   * point at the host's services on 0.0.0.0 (answerVerdict).
   */
  host: Subnet[];
}

function presetSubnets(preset: Preset, ctx: PolicyContext): Subnet[] {
  if (preset === "private") return PRIVATE_SUBNETS;
  return ctx.hostAddresses.map((a) => parseCidr(canonicalCidr(a) ?? "")?.subnet).filter((s): s is Subnet => !!s);
}

/** A validated policy with its presets expanded for this start. */
export function compilePolicy(policy: EgressPolicy, ctx: PolicyContext): CompiledPolicy {
  const compile = (rule: Rule, action: "allow" | "deny", index: number): CompiledRule => ({
    action,
    index,
    id: `${action}[${index}]`,
    text: ruleText(rule, action),
    subnets: rule.kind === "host" ? null : rule.kind === "preset" ? presetSubnets(rule.preset, ctx) : [parseCidr(rule.cidr)!.subnet],
    ...(rule.kind === "host" ? { pattern: parseHostPattern(rule.pattern) as HostPattern } : {}),
    ...(rule.ports ? { ports: rule.ports } : {}),
    ...(rule.protocol ? { protocol: rule.protocol } : {}),
  });
  const allow = policy.allow.map((r, i) => compile(r, "allow", i));
  return {
    deny: policy.deny.map((r, i) => compile(r, "deny", i)),
    allow,
    hosts: allow.flatMap((r) => (r.pattern ? [{ pattern: r.pattern, allowIndex: r.index }] : [])),
    logOnly: policy.logOnly,
    own: (ctx.sandboxAddresses ?? []).map((a) => parseCidr(canonicalCidr(a) ?? "")?.subnet).filter((s): s is Subnet => !!s),
    host: presetSubnets("host", ctx),
  };
}

// ---------------------------------------------------------------- verdicts

/** An outbound packet's destination; `port` only for TCP and UDP. */
export interface Destination {
  ip: string;
  port?: number;
  protocol: Protocol | "icmp" | "other";
}

export interface Verdict {
  allow: boolean;
  /** The rule that decided (its `id` and `text`), or null for a default. */
  rule: { id: string; text: string } | null;
  reason: "loopback" | "deny rule" | "allow rule" | "no allow rules" | "default deny" | "dns to another resolver" | "not an address";
}

/**
 * An IPv4-mapped IPv6 address (::ffff:a.b.c.d) as the IPv4 address it
 * reaches: an AF_INET6 socket connected to it sends IPv4 packets, which the
 * ruleset judges by their IPv4 destination. --accelerate's supervisor sees
 * the mapped form in the trapped sockaddr, so `verdict` must judge it the
 * same way, or `--deny-cidr private` would not cover ::ffff:10.0.0.1.
 */
export function unmapped(ip: IpAddress): IpAddress {
  return ip.family === 6 && ip.value >> 32n === 0xffffn ? { family: 4, value: ip.value & 0xffffffffn } : ip;
}

/** Which allow rules (indexes into `allow`) a DNS answer gave an address to; none by default. */
export type Learned = (ip: IpAddress) => readonly number[];
const nothingLearned: Learned = () => [];

function portsMatch(rule: CompiledRule, dest: Destination): boolean {
  if (rule.protocol && rule.protocol !== dest.protocol) return false;
  if (!rule.ports) return true;
  if (dest.port === undefined || (dest.protocol !== "tcp" && dest.protocol !== "udp")) return false;
  return rule.ports.some((r) => dest.port! >= r.from && dest.port! <= r.to);
}

/** DNS goes to burrow's resolver (on the sandbox's loopback) only, unless a rule names port 53 itself. */
function namesDns(rule: CompiledRule): boolean {
  return !!rule.ports?.some((r) => r.from <= 53 && r.to >= 53);
}

const covers = (rule: CompiledRule, ip: IpAddress) => !!rule.subnets?.some((s) => subnetContains(s, ip));

/**
 * The one verdict on an outbound destination (docs/egress.md "Semantics"):
 * the sandbox's loopback and its own addresses are not egress; a deny rule wins; with no allow
 * rule everything else passes; otherwise an allow rule must cover it, a
 * host rule through an address its name resolved to (`learned`), and DNS
 * (port 53) passes only where a rule names port 53.
 */
export function verdict(policy: CompiledPolicy, dest: Destination, learned: Learned = nothingLearned): Verdict {
  const parsed = parseIp(dest.ip);
  if (!parsed) return { allow: false, rule: null, reason: "not an address" };
  const ip = unmapped(parsed);
  if ([...LOOPBACK_SUBNETS, ...policy.own].some((s) => subnetContains(s, ip))) return { allow: true, rule: null, reason: "loopback" };
  for (const rule of policy.deny) {
    if (covers(rule, ip) && portsMatch(rule, dest)) return { allow: false, rule: { id: rule.id, text: rule.text }, reason: "deny rule" };
  }
  if (policy.allow.length === 0) return { allow: true, rule: null, reason: "no allow rules" };
  const dns = (dest.protocol === "tcp" || dest.protocol === "udp") && dest.port === 53;
  const byName = new Set(learned(ip));
  for (const rule of policy.allow) {
    const reaches = rule.subnets ? covers(rule, ip) : byName.has(rule.index);
    if (reaches && portsMatch(rule, dest) && (!dns || namesDns(rule))) return { allow: true, rule: { id: rule.id, text: rule.text }, reason: "allow rule" };
  }
  return { allow: false, rule: null, reason: dns ? "dns to another resolver" : "default deny" };
}

export interface AnswerVerdict {
  /** Whether the address goes into the sandbox's answer and its allow set. */
  keep: boolean;
  reason: "denied range" | "rebinding" | "not an address" | "allowed";
  rule?: { id: string; text: string };
}

/**
 * Whether an address in a DNS answer for an allowed name may be answered and
 * learned (rebinding protection): never one a port-less deny rule covers,
 * and, once any allow rule is given, never a loopback, link-local,
 * multicast or private address, nor one of the host's own addresses,
 * unless an allow rule names its range (then it is reachable anyway).
 * A NAT64 well-known-prefix address is judged by the IPv4 address it
 * reaches as well (64:ff9b::a00:1 is 10.0.0.1 behind the network's NAT64
 * gateway); a local-use NAT64 address, whose IPv4 address cannot be read
 * off it, needs an allow rule that covers it once any allow rule is given.
 */
export function answerVerdict(policy: CompiledPolicy, address: string): AnswerVerdict {
  const ip = parseIp(address);
  if (!ip) return { keep: false, reason: "not an address" };
  const embedded = nat64Embedded(ip);
  // What a connection to the address reaches: itself, and through NAT64 the IPv4 address it embeds.
  const reached = embedded ? [ip, embedded] : [ip];
  for (const target of reached) {
    const denied = policy.deny.find((r) => covers(r, target) && !r.ports && !r.protocol);
    if (denied) return { keep: false, reason: "denied range", rule: { id: denied.id, text: denied.text } };
  }
  // With no allow rule everything not denied is reachable anyway: nothing to protect by refusing the answer.
  if (policy.allow.length === 0) return { keep: true, reason: "allowed" };
  if (policy.allow.some((r) => reached.some((target) => covers(r, target)))) return { keep: true, reason: "allowed" };
  const refused = [...NEVER_LEARNED_SUBNETS, ...PRIVATE_SUBNETS, ...policy.host, NAT64_LOCAL_USE_SUBNET];
  if (reached.some((target) => refused.some((s) => subnetContains(s, target)))) return { keep: false, reason: "rebinding" };
  return { keep: true, reason: "allowed" };
}

/** burrow's resolver for a sandbox with a policy: on the sandbox's own loopback (docs/egress.md "The resolver"). */
export const EGRESS_RESOLVER = "127.0.0.53";

/** `inspect`'s `HostConfig.Egress` (burrow's own key; podman has none): the rules as the flags that make them. */
export function inspectEgress(policy: EgressPolicy | null): { Mode: "enforce" | "log-only"; Allow: string[]; Deny: string[]; Resolver: string } | null {
  if (!policy) return null;
  return {
    Mode: policy.logOnly ? "log-only" : "enforce",
    Allow: policy.allow.map((r) => ruleText(r, "allow")),
    Deny: policy.deny.map((r) => ruleText(r, "deny")),
    Resolver: EGRESS_RESOLVER,
  };
}
