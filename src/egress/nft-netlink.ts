// The egress ruleset loaded over netlink (src/sys/nftables.ts) instead of
// `nft -f -`: the same table, chain, rules in the same order, sets, log
// prefixes, rate limits and NFLOG group as nft.ts's nftRuleset(), which
// stays the specification (and the fallback where this cannot be used).
// Each rule is built as nft 1.0.6 builds the same line of text (seen with
// `nft --debug=netlink`): `ip daddr` checks nfproto first, a CIDR list is an
// anonymous interval set, a port list an anonymous set.
//
// Every function is synchronous and acts through `fd`, a NETLINK_NETFILTER
// socket made in the sandbox's network namespace (openNetfilterSocket() on
// the connector thread); any thread may call them, one at a time per fd.
import { bitsOf, formatIp, ipToString, lastAddress, parseIp, type Subnet, subnetToString } from "../net/cni/ip.ts";
import {
  be16,
  CT_STATE,
  dumpSetElements,
  type Expr,
  expr,
  host32,
  type KeyType,
  msg,
  NF_ACCEPT,
  NF_DROP,
  NF_INET_LOCAL_OUT,
  NFPROTO_INET,
  type NftMessage,
  RTN_LOCAL,
  SET_ELEM_INTERVAL_END,
  SET_FLAG,
  type SetElement,
  sendBatch,
  tableExists,
} from "../sys/nftables.ts";
import { FORWARDER_MARK, LEARNED_SET_SIZE, LOG_LIMIT, LOG_PREFIX, learnedSet, NFLOG_GROUP, TABLE } from "./nft.ts";
import type { CompiledPolicy, CompiledRule, PortRange } from "./policy.ts";

const CHAIN = "output";
const IPPROTO = { tcp: 6, udp: 17, icmpv6: 58 } as const;
/** ICMPv6 router solicitation, neighbour solicitation and advertisement: IPv6's link layer. */
const ND_TYPES = [133, 135, 136];
/** Multicast listener query, report, done and MLDv2 report: sent with hop limit 1, they never leave the link. */
const MLD_TYPES = [130, 131, 132, 143];
const LOOPBACK_IFINDEX = 1;
/** The RST bit of the TCP header's flags byte (offset 13). */
const TCP_RST = 0x04;

/** nft.ts's LOG_LIMIT as numbers: one text, so the two loaders cannot drift apart. */
const LIMIT = (() => {
  const m = /^limit rate (\d+)\/second burst (\d+) packets$/.exec(LOG_LIMIT);
  if (!m) throw new Error(`nft.ts's LOG_LIMIT is not "limit rate N/second burst M packets": ${LOG_LIMIT}`);
  return { perSecond: Number(m[1]), burst: Number(m[2]) };
})();

const DADDR = { 4: { offset: 16, keyType: "ipv4_addr" as const, nfproto: 2 }, 6: { offset: 24, keyType: "ipv6_addr" as const, nfproto: 10 } };

const bigBytes = (value: bigint, length: number) => {
  const out = new Uint8Array(length);
  for (let i = length - 1; i >= 0; i--) {
    out[i] = Number(value & 0xffn);
    value >>= 8n;
  }
  return out;
};
const addressBytes = (family: 4 | 6, value: bigint) => bigBytes(value, bitsOf(family) / 8);

/**
 * The messages of one batch, with the anonymous sets each rule needs put
 * just before it (numbered by the batch: the kernel names them).
 */
class Batch {
  readonly messages: NftMessage[] = [];
  private nextSetId = 1;

  set(name: string, flags: number, keyType: KeyType, size?: number): number {
    const id = this.nextSetId++;
    this.messages.push(msg.newSet(NFPROTO_INET, { table: TABLE, name, id, flags, keyType, ...(size ? { size } : {}) }));
    return id;
  }

  /** An anonymous constant set holding `elements`; its lookup. */
  anonymous(keyType: KeyType, elements: SetElement[], interval: boolean): Expr {
    const flags = SET_FLAG.anonymous | SET_FLAG.constant | (interval ? SET_FLAG.interval : 0);
    const id = this.set("__set%d", flags, keyType, elements.length);
    this.messages.push(msg.newSetElements(NFPROTO_INET, { table: TABLE, set: "__set%d", setId: id, elements }));
    return expr.lookup("__set%d", id);
  }

  rule(exprs: Expr[], what: string): void {
    this.messages.push(msg.newRule(NFPROTO_INET, { table: TABLE, chain: CHAIN, exprs, what }));
  }
}

/**
 * Closed ranges [from, to] as an interval set's elements, as nft writes them:
 * merged where they overlap or touch, each a start and an end-after (flagged
 * INTERVAL_END), a leading end at 0 when the first does not start there, and
 * no end after a range that reaches the top of the key space.
 */
function intervalElements(ranges: Array<[bigint, bigint]>, bytes: number): SetElement[] {
  const top = (1n << BigInt(bytes * 8)) - 1n;
  const sorted = [...ranges].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const merged: Array<[bigint, bigint]> = [];
  for (const [from, to] of sorted) {
    const last = merged.at(-1);
    if (!last || from > last[1] + 1n) merged.push([from, to]);
    else if (to > last[1]) last[1] = to;
  }
  const out: SetElement[] = [];
  if (merged[0]![0] !== 0n) out.push({ key: bigBytes(0n, bytes), flags: SET_ELEM_INTERVAL_END });
  for (const [from, to] of merged) {
    out.push({ key: bigBytes(from, bytes) });
    if (to !== top) out.push({ key: bigBytes(to + 1n, bytes), flags: SET_ELEM_INTERVAL_END });
  }
  return out;
}

/** `meta l4proto PROTO th dport PORTS` / `meta l4proto PROTO`: nft.ts's transportMatch. */
function transportMatch(batch: Batch, rule: Pick<CompiledRule, "ports" | "protocol">): Expr[] {
  if (!rule.ports && !rule.protocol) return [];
  const out: Expr[] = [expr.meta("l4proto")];
  if (rule.protocol) out.push(expr.cmp("eq", new Uint8Array([IPPROTO[rule.protocol]])));
  else out.push(batch.anonymous("inet_proto", [{ key: new Uint8Array([IPPROTO.tcp]) }, { key: new Uint8Array([IPPROTO.udp]) }], false));
  if (rule.ports) out.push(expr.payload("transport", 2, 2), ...portsMatch(batch, rule.ports));
  return out;
}

function portsMatch(batch: Batch, ports: readonly PortRange[]): Expr[] {
  if (ports.length === 1) {
    const [{ from, to }] = ports as [PortRange];
    return from === to ? [expr.cmp("eq", be16(from))] : [expr.cmp("gte", be16(from)), expr.cmp("lte", be16(to))];
  }
  if (ports.every((r) => r.from === r.to)) {
    const unique = [...new Set(ports.map((r) => r.from))];
    return [
      batch.anonymous(
        "inet_service",
        unique.map((p) => ({ key: be16(p) })),
        false,
      ),
    ];
  }
  return [
    batch.anonymous(
      "inet_service",
      intervalElements(
        ports.map((r) => [BigInt(r.from), BigInt(r.to)]),
        2,
      ),
      true,
    ),
  ];
}

/** `ip daddr CIDR` / `ip6 daddr { CIDR, ... }` / `ip daddr @set`, with nft's nfproto check first. */
function addressMatch(batch: Batch, family: 4 | 6, target: { subnets: Subnet[] } | { set: string }): Expr[] {
  const { offset, keyType, nfproto } = DADDR[family];
  const bytes = bitsOf(family) / 8;
  const out: Expr[] = [expr.meta("nfproto"), expr.cmp("eq", new Uint8Array([nfproto]))];
  if ("set" in target) return [...out, expr.payload("network", offset, bytes), expr.lookup(target.set, undefined)];
  const { subnets } = target;
  if (subnets.length > 1)
    return [
      ...out,
      expr.payload("network", offset, bytes),
      batch.anonymous(
        keyType,
        intervalElements(
          subnets.map((s) => [s.network, lastAddress(s)]),
          bytes,
        ),
        true,
      ),
    ];
  const [s] = subnets as [Subnet];
  if (s.prefix % 8 === 0 && s.prefix > 0) {
    // A whole-byte prefix: only those bytes are loaded and compared.
    const n = s.prefix / 8;
    return [...out, expr.payload("network", offset, n), expr.cmp("eq", addressBytes(family, s.network).subarray(0, n))];
  }
  const mask = bigBytes(s.prefix === 0 ? 0n : ((1n << BigInt(s.prefix)) - 1n) << BigInt(bitsOf(family) - s.prefix), bytes);
  return [...out, expr.payload("network", offset, bytes), expr.bitwise(mask, new Uint8Array(bytes)), expr.cmp("eq", addressBytes(family, s.network))];
}

/** A rule's matches, one per address family it covers: nft.ts's matches(). Built lazily, so each use gets its own anonymous sets as nft's text does. */
function matches(rule: CompiledRule): Array<{ text: string; build: (batch: Batch) => Expr[] }> {
  if (!rule.subnets)
    return ([4, 6] as const).map((family) => ({
      text: `${family === 4 ? "ip" : "ip6"} daddr @${learnedSet(rule.index, family)}`,
      build: (batch) => [...addressMatch(batch, family, { set: learnedSet(rule.index, family) }), ...transportMatch(batch, rule)],
    }));
  const out: Array<{ text: string; build: (batch: Batch) => Expr[] }> = [];
  for (const family of [4, 6] as const) {
    const unique = new Map(rule.subnets.filter((s) => s.family === family).map((s) => [subnetToString(s), s]));
    const subnets = [...unique.values()];
    if (subnets.length > 0)
      out.push({
        text: `${family === 4 ? "ip" : "ip6"} daddr ${[...unique.keys()].join(", ")}`,
        build: (batch) => [...addressMatch(batch, family, { subnets }), ...transportMatch(batch, rule)],
      });
  }
  return out;
}

const namesDns = (rule: CompiledRule) => !!rule.ports?.some((r) => r.from <= 53 && r.to >= 53);

/** nft.ts's refusing(): the rate-limited log, then the verdicts, each its own rule. */
function refusing(batch: Batch, match: (b: Batch) => Expr[], text: string, tag: string, logOnly: boolean, protocol?: "tcp" | "udp"): void {
  batch.rule([...match(batch), expr.limitPackets(LIMIT.perSecond, LIMIT.burst), expr.log(`${LOG_PREFIX}${tag} `, NFLOG_GROUP)], `log of ${tag} (${text})`);
  if (logOnly) {
    batch.rule([...match(batch), expr.counter(), expr.verdict(NF_ACCEPT)], `log-only accept of ${tag} (${text})`);
    return;
  }
  if (protocol !== "udp")
    batch.rule(
      [...match(batch), expr.meta("l4proto"), expr.cmp("eq", new Uint8Array([IPPROTO.tcp])), expr.counter(), expr.rejectTcpReset()],
      `tcp reset of ${tag} (${text})`,
    );
  batch.rule([...match(batch), expr.counter(), expr.verdict(NF_DROP)], `drop of ${tag} (${text})`);
}

/** `icmpv6 type { TYPES } ip6 hoplimit HOPS accept`. */
function icmpv6LinkAccept(batch: Batch, types: readonly number[], hops: number, what: string): void {
  batch.rule(
    [
      expr.meta("nfproto"),
      expr.cmp("eq", new Uint8Array([DADDR[6].nfproto])),
      expr.meta("l4proto"),
      expr.cmp("eq", new Uint8Array([IPPROTO.icmpv6])),
      expr.payload("transport", 0, 1),
      batch.anonymous(
        "icmpv6_type",
        types.map((t) => ({ key: new Uint8Array([t]) })),
        false,
      ),
      expr.payload("network", 7, 1),
      expr.cmp("eq", new Uint8Array([hops])),
      expr.verdict(NF_ACCEPT),
    ],
    what,
  );
}

/** The batch that replaces the table: nftRuleset() as messages. Exported for the tests. */
export function rulesetMessages(policy: CompiledPolicy, fresh = false): NftMessage[] {
  const batch = new Batch();
  // `table`, `delete table`, then the table: the delete never fails, and the whole is one transaction.
  if (!fresh) batch.messages.push(msg.newTable(NFPROTO_INET, TABLE), msg.delTable(NFPROTO_INET, TABLE));
  batch.messages.push(msg.newTable(NFPROTO_INET, TABLE));
  for (const r of policy.allow.filter((r) => !r.subnets))
    for (const family of [4, 6] as const) batch.set(learnedSet(r.index, family), SET_FLAG.timeout, DADDR[family].keyType, LEARNED_SET_SIZE);
  batch.messages.push(msg.newBaseChain(NFPROTO_INET, { table: TABLE, chain: CHAIN, type: "filter", hook: NF_INET_LOCAL_OUT, priority: 0, policy: NF_ACCEPT }));
  // First: packets of flows already judged (nft.ts says why).
  batch.rule(
    [expr.ctState(), expr.bitwise(host32(CT_STATE.established | CT_STATE.related), host32(0)), expr.cmp("neq", host32(0)), expr.verdict(NF_ACCEPT)],
    "ct state established,related accept",
  );
  // Loopback from a local source (or the forwarder's marked connections) is not egress; a forged source out of lo is refused (nft.ts says why).
  const loopback = () => [expr.meta("oif"), expr.cmp("eq", host32(LOOPBACK_IFINDEX))];
  batch.rule([...loopback(), expr.meta("mark"), expr.cmp("eq", host32(FORWARDER_MARK)), expr.verdict(NF_ACCEPT)], 'oif "lo" meta mark accept');
  batch.rule([...loopback(), expr.fibSaddrType(), expr.cmp("eq", host32(RTN_LOCAL)), expr.verdict(NF_ACCEPT)], 'oif "lo" fib saddr type local accept');
  batch.rule(
    [
      ...loopback(),
      expr.meta("l4proto"),
      expr.cmp("eq", new Uint8Array([IPPROTO.tcp])),
      expr.payload("transport", 13, 1),
      expr.bitwise(new Uint8Array([TCP_RST]), new Uint8Array([0])),
      expr.cmp("eq", new Uint8Array([TCP_RST])),
      expr.verdict(NF_ACCEPT),
    ],
    'oif "lo" tcp flags & rst == rst accept',
  );
  refusing(batch, loopback, 'oif "lo"', "spoof", policy.logOnly);
  // IPv6's own link traffic, which never leaves the link: neighbour and router discovery (hop limit 255), multicast listener reports (hop limit 1).
  icmpv6LinkAccept(batch, ND_TYPES, 255, "icmpv6 neighbour discovery accept");
  icmpv6LinkAccept(batch, MLD_TYPES, 1, "icmpv6 multicast listener reports accept");
  for (const rule of policy.deny) for (const m of matches(rule)) refusing(batch, m.build, m.text, rule.id, policy.logOnly, rule.protocol);
  if (policy.allow.length > 0) {
    const accept = (rule: CompiledRule) => {
      for (const m of matches(rule)) batch.rule([...m.build(batch), expr.verdict(NF_ACCEPT)], `accept of ${rule.id} (${m.text})`);
    };
    policy.allow.filter(namesDns).forEach(accept);
    refusing(batch, (b) => transportMatch(b, { ports: [{ from: 53, to: 53 }] }), "th dport 53", "dns", policy.logOnly);
    policy.allow.filter((r) => !namesDns(r)).forEach(accept);
    refusing(batch, () => [], "everything else", "default", policy.logOnly);
  }
  return batch.messages;
}

/** Replaces table inet burrow_egress with the policy's (`fresh`: there is none yet, so no delete), in one batch (same rules, order, sets, log prefixes and NFLOG group as nft.ts's nftRuleset). */
export function loadRuleset(fd: number, policy: CompiledPolicy, fresh = false): void {
  sendBatch(fd, rulesetMessages(policy, fresh));
}

const LEARNED_SET = /^allow_(\d+)_v([46])$/;

/** Adds (or refreshes the timeout of) learned addresses, one batch; set names from nft.ts learnedSet(). */
export function learnAddresses(fd: number, entries: readonly { set: string; address: string; seconds: number }[]): void {
  // One element per set and address (its longest timeout): a second delete of one element in a batch would fail.
  const bySet = new Map<string, Map<string, { key: Uint8Array; seconds: number }>>();
  for (const e of entries) {
    const set = LEARNED_SET.exec(e.set);
    const ip = parseIp(e.address);
    if (!set || !ip || Number(set[2]) !== ip.family || !Number.isFinite(e.seconds))
      throw new Error(`not a learned address: ${JSON.stringify(e.address)} for set ${JSON.stringify(e.set)}`);
    const elements = bySet.get(e.set) ?? new Map();
    bySet.set(e.set, elements);
    const text = ipToString(ip);
    const seconds = Math.max(1, Math.floor(e.seconds), elements.get(text)?.seconds ?? 0);
    elements.set(text, { key: addressBytes(ip.family, ip.value), seconds });
  }
  // Add, delete, add: `add` of an element already there keeps its old timeout (nft.ts nftLearn); the first add makes the delete never fail.
  const messages: NftMessage[] = [];
  for (const [set, elements] of bySet) {
    const withTimeout = [...elements.values()].map((e) => ({ key: e.key, timeoutMs: e.seconds * 1000 }));
    messages.push(
      msg.newSetElements(NFPROTO_INET, { table: TABLE, set, elements: withTimeout }),
      msg.delSetElements(NFPROTO_INET, { table: TABLE, set, elements: withTimeout }),
      msg.newSetElements(NFPROTO_INET, { table: TABLE, set, elements: withTimeout }),
    );
  }
  sendBatch(fd, messages);
}

/** The learned sets' elements with the milliseconds each has left (a new daemon reads them back after kill -9). */
export function readLearned(fd: number, policy: CompiledPolicy): { set: string; address: string; expiresInMs: number }[] {
  const out: { set: string; address: string; expiresInMs: number }[] = [];
  for (const rule of policy.allow.filter((r) => !r.subnets))
    for (const family of [4, 6] as const) {
      const set = learnedSet(rule.index, family);
      for (const e of dumpSetElements(fd, NFPROTO_INET, TABLE, set)) {
        if (e.key.length !== bitsOf(family) / 8) continue;
        const value = e.key.reduce((v, b) => (v << 8n) | BigInt(b), 0n);
        out.push({ set, address: formatIp(family, value), expiresInMs: e.expiresInMs ?? 0 });
      }
    }
  return out;
}

/** Whether table inet burrow_egress exists (recovery after a daemon crash keeps it). */
export function hasRuleset(fd: number): boolean {
  return tableExists(fd, NFPROTO_INET, TABLE);
}
