// The nftables ruleset that enforces a sandbox's egress policy in the
// sandbox's own network namespace (docs/egress.md "Enforcement"). Pure text:
// the daemon (not built yet) loads it with `nft -f -` run in that namespace
// before the command starts, and adds learned addresses with nftLearn().
// The rule order is policy.ts's `verdict`, rule for rule; the unit tests
// hold the two side by side.
import { ipToString, parseIp, subnetToString } from "../net/cni/ip.ts";
import type { CompiledPolicy, CompiledRule, PortRange } from "./policy.ts";

export const TABLE = "burrow_egress";
/** The NFLOG group refusals are logged to: the daemon listens on it in the sandbox's namespace ("bu", as burrow's fwmark 0x6275). */
export const NFLOG_GROUP = 25205;
/** Per refusing rule, so a tight loop cannot flood the daemon; the daemon coalesces repeats further (docs/egress.md "Events"). */
export const LOG_LIMIT = "limit rate 20/second burst 40 packets";
/** Every log prefix starts so; the rest is a rule id (`deny[0]`), `dns` or `default`. */
export const LOG_PREFIX = "burrow-egress ";

/**
 * The most addresses one learned set holds (one --allow-host rule, one
 * family): the kernel refuses more (the resolver then answers SERVFAIL:
 * fails closed), so a hostile name server behind an allowed wildcard
 * cannot grow kernel memory without bound. Not 65535 (nft's usual): the
 * kernel sizes the set's hash table for it up front, 1 MiB of vmalloc per
 * set, and with a few host rules that made a sandbox's start wait 20-50 ms
 * on the previous sandbox's freeing of its own (measured; 4096: 1-3 ms).
 */
export const LEARNED_SET_SIZE = 4096;

/**
 * The mark the port forwarder's connector puts on its client-address
 * connections into the sandbox (src/ports/client-address.ts CLIENT_MARK:
 * a unit test holds the two equal; egress stays free of the forwarder's
 * imports). Their source is the client's, not a local address; nothing in
 * a sandbox with a policy can set a mark (SO_MARK needs NET_ADMIN or
 * NET_RAW, both refused with a policy).
 */
export const FORWARDER_MARK = 0x6275;

/** Set names of an allow rule's learned addresses. */
export const learnedSet = (allowIndex: number, family: 4 | 6) => `allow_${allowIndex}_v${family}`;

const portsText = (ports: readonly PortRange[]) => {
  const items = ports.map((r) => (r.from === r.to ? `${r.from}` : `${r.from}-${r.to}`));
  return items.length === 1 ? items[0]! : `{ ${items.join(", ")} }`;
};

/** The transport part of a rule's match: protocol and ports, empty when it covers everything. */
function transportMatch(rule: Pick<CompiledRule, "ports" | "protocol">): string {
  if (rule.ports) return `meta l4proto ${rule.protocol ?? "{ tcp, udp }"} th dport ${portsText(rule.ports)}`;
  return rule.protocol ? `meta l4proto ${rule.protocol}` : "";
}

/** A rule's matches, one per address family it has ranges (or a learned set) for. */
function matches(rule: CompiledRule): string[] {
  const transport = transportMatch(rule);
  const join = (...parts: string[]) => parts.filter((p) => p !== "").join(" ");
  if (!rule.subnets) return [join(`ip daddr @${learnedSet(rule.index, 4)}`, transport), join(`ip6 daddr @${learnedSet(rule.index, 6)}`, transport)];
  const out: string[] = [];
  for (const [family, keyword] of [
    [4, "ip"],
    [6, "ip6"],
  ] as const) {
    const ranges = [...new Set(rule.subnets.filter((s) => s.family === family).map(subnetToString))];
    if (ranges.length > 0) out.push(join(`${keyword} daddr ${ranges.length === 1 ? ranges[0] : `{ ${ranges.join(", ")} }`}`, transport));
  }
  return out;
}

const namesDns = (rule: CompiledRule) => !!rule.ports?.some((r) => r.from <= 53 && r.to >= 53);

/**
 * A refusal: logged (rate-limited, so the limit may only silence the log,
 * never the verdict: the verdict is a rule of its own), then refused, or
 * let through under --egress-log-only. TCP gets a reset, so connect()
 * fails at once with ECONNREFUSED instead of retrying its SYN into a drop
 * until the program's timeout; anything else is dropped, which fails the
 * sender's send at once with EPERM. An empty match is every packet;
 * `protocol` is the match's own, when it has one.
 */
function refusing(match: string, tag: string, logOnly: boolean, protocol?: "tcp" | "udp"): string[] {
  const m = match === "" ? "" : `${match} `;
  const log = `${m}${LOG_LIMIT} log prefix "${LOG_PREFIX}${tag} " group ${NFLOG_GROUP}`;
  if (logOnly) return [log, `${m}counter accept`];
  const reset = protocol === "udp" ? [] : [`${m}meta l4proto tcp counter reject with tcp reset`];
  return [log, ...reset, `${m}counter drop`];
}

/**
 * The whole table, replacing any earlier one in one transaction (the
 * `table`/`delete table` pair makes the delete never fail). Order:
 * 1. packets of connections already allowed (and ICMP errors about them):
 *    a learned address stays reachable while its connection lives; first,
 *    so the bulk of the traffic crosses one rule (every flow met the rules
 *    below with its first packet);
 * 2. the sandbox's loopback (its own addresses and burrow's resolver on
 *    127.0.0.53) is not egress, for packets from a local address (or the
 *    forwarder's marked client-address connections); anything else out of
 *    lo is a forged source, refused (before conntrack confirms its flow);
 * 3. IPv6 neighbour and router discovery (hop limit 255: never routed), or
 *    IPv6 stops working; and multicast listener reports (hop limit 1: they
 *    never leave the link), which the kernel sends by itself whenever an
 *    interface comes up: refused, each one was a refusal event nobody caused;
 * 4. deny rules, in order;
 * then with any allow rule: 5. allow rules that name port 53, 6. DNS to
 * anyone else refused, 7. the other allow rules, 8. everything else refused.
 */
export function nftRuleset(policy: CompiledPolicy): string {
  const lines: string[] = [];
  const hostRules = policy.allow.filter((r) => !r.subnets);
  for (const r of hostRules)
    for (const family of [4, 6] as const)
      lines.push(`  set ${learnedSet(r.index, family)} { type ${family === 4 ? "ipv4_addr" : "ipv6_addr"}; flags timeout; size ${LEARNED_SET_SIZE}; }`);
  const chain: string[] = [
    "type filter hook output priority filter; policy accept;",
    // First: the packets of flows already judged (every flow met the rules below at its first packet), the bulk of the traffic, cross one rule.
    "ct state established,related accept",
    // The loopback is not egress, but only for packets from the sandbox's own
    // addresses: an IPv6 socket may bind any address with IPV6_FREEBIND (no
    // capability needed) and send to its own other socket over lo, and
    // conntrack would then take that socket's reply to the forged address,
    // out of the sandbox, as "established".
    `oif "lo" meta mark 0x${FORWARDER_MARK.toString(16).padStart(8, "0")} accept`,
    'oif "lo" fib saddr type local accept',
    // The resets our own refusals send back (`reject with tcp reset`) come from the refused address; a reset makes no connection.
    'oif "lo" tcp flags & rst == rst accept',
    ...refusing('oif "lo"', "spoof", policy.logOnly),
    "icmpv6 type { nd-router-solicit, nd-neighbor-solicit, nd-neighbor-advert } ip6 hoplimit 255 accept",
    "icmpv6 type { mld-listener-query, mld-listener-report, mld-listener-done, mld2-listener-report } ip6 hoplimit 1 accept",
  ];
  for (const rule of policy.deny) for (const m of matches(rule)) chain.push(...refusing(m, rule.id, policy.logOnly, rule.protocol));
  if (policy.allow.length > 0) {
    const accept = (rule: CompiledRule) => matches(rule).map((m) => `${m} accept`);
    chain.push(...policy.allow.filter(namesDns).flatMap(accept));
    chain.push(...refusing("meta l4proto { tcp, udp } th dport 53", "dns", policy.logOnly));
    chain.push(...policy.allow.filter((r) => !namesDns(r)).flatMap(accept));
    chain.push(...refusing("", "default", policy.logOnly));
  }
  return [
    `table inet ${TABLE}`,
    `delete table inet ${TABLE}`,
    `table inet ${TABLE} {`,
    ...lines,
    "  chain output {",
    ...chain.map((l) => `    ${l}`),
    "  }",
    "}",
    "",
  ].join("\n");
}

export interface LearnedElement {
  address: string;
  /** Index into the policy's `allow` (a host rule). */
  rule: number;
  /** learned.ts's learnedSeconds(ttl). */
  seconds: number;
}

/**
 * Adds learned addresses, each with its timeout. `add` of an element already
 * there keeps its old timeout, so each is added, deleted and added again in
 * one transaction: the first add makes the delete never fail. The resolver
 * (worker.ts) writes an address only when the entry it wrote before would
 * end before an answer needs it, with LEARN_SLACK_S to spare, so a new
 * timeout is later than the one it replaces (but for the first write after
 * a worker restart, which may shorten one: never below what the answer needs).
 */
export function nftLearn(elements: readonly LearnedElement[]): string {
  return elements
    .flatMap((e) => {
      // The address came from an upstream answer: only a parsed one, printed by burrow, goes into nft's input.
      const ip = parseIp(e.address);
      if (!ip || !Number.isInteger(e.rule) || e.rule < 0) throw new Error(`not a learned address: ${JSON.stringify(e.address)} for rule ${e.rule}`);
      const set = learnedSet(e.rule, ip.family);
      const address = ipToString(ip);
      const seconds = Math.max(1, Math.floor(e.seconds));
      return [
        `add element inet ${TABLE} ${set} { ${address} timeout ${seconds}s }`,
        `delete element inet ${TABLE} ${set} { ${address} }`,
        `add element inet ${TABLE} ${set} { ${address} timeout ${seconds}s }`,
      ];
    })
    .map((l) => `${l}\n`)
    .join("");
}

/** The rule id a refusal's log prefix names (`deny[0]`, `dns`, `default`), or null for a prefix that is not burrow's. */
export function refusalTag(prefix: string): string | null {
  const m = new RegExp(`^${LOG_PREFIX}(deny\\[\\d+\\]|dns|default|spoof) ?$`).exec(prefix);
  return m ? m[1]! : null;
}
