// nftables over netlink (nfnetlink subsystem NFNL_SUBSYS_NFTABLES), so
// burrow loads a sandbox's egress ruleset without spawning `nft` (a spawn
// of nft -f cost ~19 ms a start; docs/egress.md "Enforcement"). Only what
// the egress ruleset needs: tables, one base chain, named and anonymous
// sets, set elements (with timeouts), rules made of a few expressions, and
// two reads (does a table exist, a set's elements with their time left).
//
// Every call is synchronous on the calling thread and uses a
// NETLINK_NETFILTER socket (src/sys/nfnetlink.ts openNetfilterSocket): it
// acts on the network namespace that socket was made in, whichever thread
// calls. One user per socket at a time: replies are matched by sequence
// number, and a second thread reading the same fd would take the first's.
//
// Encodings mirror what `nft --debug=netlink -f` shows nft 1.0.6 sending
// (libnftnl): nlattr headers in host order, every integer attribute
// big-endian, register values in the byte order of what was loaded
// (payloads network order, meta oif and ct state host order).
import { ptr } from "bun:ffi";
import { ERRNO } from "./errno.ts";
import { errno, libc, SysError } from "./libc.ts";

const NFNL_SUBSYS_NFTABLES = 10;
const NFNL_MSG_BATCH_BEGIN = 16;
const NFNL_MSG_BATCH_END = 17;
const NLMSG_ERROR = 2;
const NLMSG_DONE = 3;
const NLM_F_REQUEST = 1;
const NLM_F_ACK = 4;
const NLM_F_DUMP = 0x300;
const NLM_F_CREATE = 0x400;
const NLM_F_APPEND = 0x800;
const NLA_F_NESTED = 0x8000;
const MSG_DONTWAIT = 0x40;
const POLLIN = 1;

export const NFPROTO_INET = 1;
export const NFPROTO_IPV4 = 2;
export const NFPROTO_IPV6 = 10;

const MSG = {
  NEWTABLE: 0,
  GETTABLE: 1,
  DELTABLE: 2,
  NEWCHAIN: 3,
  NEWRULE: 6,
  NEWSET: 9,
  NEWSETELEM: 12,
  GETSETELEM: 13,
  DELSETELEM: 14,
} as const;

const NFTA_TABLE_NAME = 1;
const NFTA_TABLE_FLAGS = 2;
const NFTA_CHAIN_TABLE = 1;
const NFTA_CHAIN_NAME = 3;
const NFTA_CHAIN_HOOK = 4;
const NFTA_CHAIN_POLICY = 5;
const NFTA_CHAIN_TYPE = 7;
const NFTA_HOOK_HOOKNUM = 1;
const NFTA_HOOK_PRIORITY = 2;
const NFTA_RULE_TABLE = 1;
const NFTA_RULE_CHAIN = 2;
const NFTA_RULE_EXPRESSIONS = 4;
const NFTA_LIST_ELEM = 1;
const NFTA_EXPR_NAME = 1;
const NFTA_EXPR_DATA = 2;
const NFTA_SET_TABLE = 1;
const NFTA_SET_NAME = 2;
const NFTA_SET_FLAGS = 3;
const NFTA_SET_KEY_TYPE = 4;
const NFTA_SET_KEY_LEN = 5;
const NFTA_SET_DESC = 9;
const NFTA_SET_ID = 10;
const NFTA_SET_DESC_SIZE = 1;
const NFTA_SET_ELEM_LIST_TABLE = 1;
const NFTA_SET_ELEM_LIST_SET = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS = 3;
const NFTA_SET_ELEM_LIST_SET_ID = 4;
const NFTA_SET_ELEM_KEY = 1;
const NFTA_SET_ELEM_FLAGS = 3;
const NFTA_SET_ELEM_TIMEOUT = 4;
const NFTA_SET_ELEM_EXPIRATION = 5;
const NFTA_DATA_VALUE = 1;
const NFTA_DATA_VERDICT = 2;
const NFTA_VERDICT_CODE = 1;

export const SET_FLAG = { anonymous: 1, constant: 2, interval: 4, timeout: 16 } as const;
export const SET_ELEM_INTERVAL_END = 1;
/** nft's datatype numbers (only nft reads them back: `nft list` prints keys by them). */
export const KEY_TYPE = { ipv4_addr: 7, ipv6_addr: 8, inet_proto: 12, inet_service: 13, icmpv6_type: 29 } as const;
export type KeyType = keyof typeof KEY_TYPE;
export const KEY_LEN: Record<KeyType, number> = { ipv4_addr: 4, ipv6_addr: 16, inet_proto: 1, inet_service: 2, icmpv6_type: 1 };

export const NF_DROP = 0;
export const NF_ACCEPT = 1;
export const NF_INET_LOCAL_OUT = 3;
/** nft's `reg 1`: the 16-byte register 1, wide enough for an IPv6 address. */
export const REG_1 = 1;
const REG_VERDICT = 0;

// ---------------------------------------------------------------- attributes

/** A netlink attribute: bytes, or nested attributes. */
export interface Attr {
  type: number;
  value: Uint8Array | Attr[];
}

export const be16 = (n: number) => new Uint8Array([(n >> 8) & 0xff, n & 0xff]);
export const be32 = (n: number) => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n >>> 0, false);
  return b;
};
const be64 = (n: number) => {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(Math.max(0, Math.floor(n))), false);
  return b;
};
/** A u32 in host (little-endian) order: register values meta oif and ct state load so. */
export const host32 = (n: number) => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n >>> 0, true);
  return b;
};
const text = (s: string) => new TextEncoder().encode(`${s}\0`);

const attr = (type: number, value: Uint8Array | Attr[]): Attr => ({ type, value });
const u32 = (type: number, n: number) => attr(type, be32(n));
const str = (type: number, s: string) => attr(type, text(s));
const data = (type: number, bytes: Uint8Array) => attr(type, [attr(NFTA_DATA_VALUE, bytes)]);

const align4 = (n: number) => (n + 3) & ~3;

function attrSize(a: Attr): number {
  return 4 + (a.value instanceof Uint8Array ? a.value.length : a.value.reduce((s, c) => s + align4(attrSize(c)), 0));
}

function writeAttrs(view: DataView, bytes: Uint8Array, offset: number, attrs: readonly Attr[]): number {
  let off = offset;
  for (const a of attrs) {
    const size = attrSize(a);
    view.setUint16(off, size, true);
    view.setUint16(off + 2, a.value instanceof Uint8Array ? a.type : a.type | NLA_F_NESTED, true);
    if (a.value instanceof Uint8Array) bytes.set(a.value, off + 4);
    else writeAttrs(view, bytes, off + 4, a.value);
    off += align4(size);
  }
  return off;
}

/** Attributes parsed flat: type (without the nested flag) to payload. */
function parseAttrs(bytes: Uint8Array, start: number, end: number): Map<number, Uint8Array> {
  const out = new Map<number, Uint8Array>();
  const view = new DataView(bytes.buffer, bytes.byteOffset);
  for (let off = start; off + 4 <= end; ) {
    const len = view.getUint16(off, true);
    if (len < 4 || off + len > end) break;
    out.set(view.getUint16(off + 2, true) & 0x3fff, bytes.subarray(off + 4, off + len));
    off += align4(len);
  }
  return out;
}

/** The nested attributes of one payload, each NFTA_LIST_ELEM in order. */
function parseList(bytes: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  const view = new DataView(bytes.buffer, bytes.byteOffset);
  for (let off = 0; off + 4 <= bytes.length; ) {
    const len = view.getUint16(off, true);
    if (len < 4 || off + len > bytes.length) break;
    if ((view.getUint16(off + 2, true) & 0x3fff) === NFTA_LIST_ELEM) out.push(bytes.subarray(off + 4, off + len));
    off += align4(len);
  }
  return out;
}

// ---------------------------------------------------------------- expressions

/** One rule expression: its kernel name and attributes. */
export interface Expr {
  name: string;
  attrs: Attr[];
}

export const META_KEY = { mark: 3, oif: 5, oifname: 7, nfproto: 15, l4proto: 16 } as const;
export const CMP_OP = { eq: 0, neq: 1, lt: 2, lte: 3, gt: 4, gte: 5 } as const;
export const PAYLOAD_BASE = { network: 1, transport: 2 } as const;
export const CT_KEY_STATE = 0;
export const CT_STATE = { invalid: 1, established: 2, related: 4, new: 8 } as const;
export const REJECT_TCP_RST = 1;
/** fib's result NFT_FIB_RESULT_ADDRTYPE, its flag NFTA_FIB_F_SADDR, and the address type RTN_LOCAL it is compared with. */
const FIB_RESULT_ADDRTYPE = 3;
const FIB_F_SADDR = 1;
export const RTN_LOCAL = 2;
const LIMIT_PACKETS = 0;

export const expr = {
  meta: (key: keyof typeof META_KEY, dreg = REG_1): Expr => ({ name: "meta", attrs: [u32(2, META_KEY[key]), u32(1, dreg)] }),
  payload: (base: keyof typeof PAYLOAD_BASE, offset: number, len: number, dreg = REG_1): Expr => ({
    name: "payload",
    attrs: [u32(1, dreg), u32(2, PAYLOAD_BASE[base]), u32(3, offset), u32(4, len)],
  }),
  cmp: (op: keyof typeof CMP_OP, value: Uint8Array, sreg = REG_1): Expr => ({ name: "cmp", attrs: [u32(1, sreg), u32(2, CMP_OP[op]), data(3, value)] }),
  /** reg = (reg & mask) ^ xor, over mask.length bytes. */
  bitwise: (mask: Uint8Array, xor: Uint8Array, reg = REG_1): Expr => ({
    name: "bitwise",
    attrs: [u32(1, reg), u32(2, reg), u32(3, mask.length), data(4, mask), data(5, xor)],
  }),
  /** A set lookup; `setId` for a set made in the same batch (an anonymous one's name is the kernel's to choose). */
  lookup: (set: string, setId: number | undefined, sreg = REG_1): Expr => ({
    name: "lookup",
    attrs: [str(1, set), u32(2, sreg), ...(setId === undefined ? [] : [u32(4, setId)])],
  }),
  /** fib saddr type: the routing type of the packet's source address (RTN_LOCAL: one of this netns's). */
  fibSaddrType: (dreg = REG_1): Expr => ({ name: "fib", attrs: [u32(1, dreg), u32(2, FIB_RESULT_ADDRTYPE), u32(3, FIB_F_SADDR)] }),
  ctState: (dreg = REG_1): Expr => ({ name: "ct", attrs: [u32(1, dreg), u32(2, CT_KEY_STATE)] }),
  /** limit rate PER/second burst BURST packets. */
  limitPackets: (perSecond: number, burst: number): Expr => ({
    name: "limit",
    attrs: [attr(1, be64(perSecond)), attr(2, be64(1)), u32(3, burst), u32(4, LIMIT_PACKETS), u32(5, 0)],
  }),
  /** log prefix PREFIX group GROUP (NFLOG; the instance's copy range applies). */
  log: (prefix: string, group: number): Expr => ({ name: "log", attrs: [attr(1, be16(group)), str(2, prefix)] }),
  counter: (): Expr => ({ name: "counter", attrs: [attr(1, be64(0)), attr(2, be64(0))] }),
  rejectTcpReset: (): Expr => ({ name: "reject", attrs: [u32(1, REJECT_TCP_RST), attr(2, new Uint8Array([0]))] }),
  verdict: (code: typeof NF_ACCEPT | typeof NF_DROP): Expr => ({
    name: "immediate",
    attrs: [u32(1, REG_VERDICT), attr(2, [attr(NFTA_DATA_VERDICT, [u32(NFTA_VERDICT_CODE, code)])])],
  }),
};

// ---------------------------------------------------------------- messages

/** One nf_tables request of a batch; `what` names it in an error. */
export interface NftMessage {
  type: number;
  flags: number;
  family: number;
  attrs: Attr[];
  what: string;
}

export interface SetElement {
  key: Uint8Array;
  /** SET_ELEM_INTERVAL_END for the end of an interval. */
  flags?: number;
  timeoutMs?: number;
}

const elementAttrs = (elements: readonly SetElement[]): Attr =>
  attr(
    NFTA_SET_ELEM_LIST_ELEMENTS,
    elements.map((e) =>
      attr(NFTA_LIST_ELEM, [
        data(NFTA_SET_ELEM_KEY, e.key),
        ...(e.flags ? [u32(NFTA_SET_ELEM_FLAGS, e.flags)] : []),
        ...(e.timeoutMs !== undefined ? [attr(NFTA_SET_ELEM_TIMEOUT, be64(e.timeoutMs))] : []),
      ]),
    ),
  );

export const msg = {
  /** `add table`: creates it, or leaves an existing one as it is. */
  newTable: (family: number, table: string): NftMessage => ({
    type: MSG.NEWTABLE,
    flags: NLM_F_CREATE,
    family,
    attrs: [str(NFTA_TABLE_NAME, table), u32(NFTA_TABLE_FLAGS, 0)],
    what: `add table ${table}`,
  }),
  delTable: (family: number, table: string): NftMessage => ({
    type: MSG.DELTABLE,
    flags: 0,
    family,
    attrs: [str(NFTA_TABLE_NAME, table)],
    what: `delete table ${table}`,
  }),
  /** A base chain: `type TYPE hook HOOK priority PRIORITY; policy POLICY;`. */
  newBaseChain: (
    family: number,
    o: { table: string; chain: string; type: "filter"; hook: number; priority: number; policy: typeof NF_ACCEPT | typeof NF_DROP },
  ): NftMessage => ({
    type: MSG.NEWCHAIN,
    flags: NLM_F_CREATE,
    family,
    attrs: [
      str(NFTA_CHAIN_TABLE, o.table),
      str(NFTA_CHAIN_NAME, o.chain),
      attr(NFTA_CHAIN_HOOK, [u32(NFTA_HOOK_HOOKNUM, o.hook), u32(NFTA_HOOK_PRIORITY, o.priority)]),
      u32(NFTA_CHAIN_POLICY, o.policy),
      str(NFTA_CHAIN_TYPE, o.type),
    ],
    what: `add chain ${o.table} ${o.chain}`,
  }),
  /** A set; an anonymous one is named `__set%d` (the kernel numbers it) and found by `id` within the batch. */
  newSet: (family: number, o: { table: string; name: string; id: number; flags: number; keyType: KeyType; size?: number }): NftMessage => ({
    type: MSG.NEWSET,
    flags: NLM_F_CREATE,
    family,
    attrs: [
      str(NFTA_SET_TABLE, o.table),
      str(NFTA_SET_NAME, o.name),
      u32(NFTA_SET_FLAGS, o.flags),
      u32(NFTA_SET_KEY_TYPE, KEY_TYPE[o.keyType]),
      u32(NFTA_SET_KEY_LEN, KEY_LEN[o.keyType]),
      u32(NFTA_SET_ID, o.id),
      ...(o.size ? [attr(NFTA_SET_DESC, [u32(NFTA_SET_DESC_SIZE, o.size)])] : []),
    ],
    what: `add set ${o.table} ${o.name}`,
  }),
  newSetElements: (family: number, o: { table: string; set: string; setId?: number; elements: readonly SetElement[] }): NftMessage => ({
    type: MSG.NEWSETELEM,
    flags: NLM_F_CREATE,
    family,
    attrs: [
      str(NFTA_SET_ELEM_LIST_TABLE, o.table),
      str(NFTA_SET_ELEM_LIST_SET, o.set),
      ...(o.setId === undefined ? [] : [u32(NFTA_SET_ELEM_LIST_SET_ID, o.setId)]),
      elementAttrs(o.elements),
    ],
    what: `add element ${o.table} ${o.set} (${o.elements.length})`,
  }),
  delSetElements: (family: number, o: { table: string; set: string; elements: readonly SetElement[] }): NftMessage => ({
    type: MSG.DELSETELEM,
    flags: 0,
    family,
    attrs: [str(NFTA_SET_ELEM_LIST_TABLE, o.table), str(NFTA_SET_ELEM_LIST_SET, o.set), elementAttrs(o.elements.map((e) => ({ key: e.key })))],
    what: `delete element ${o.table} ${o.set} (${o.elements.length})`,
  }),
  /** A rule appended to a chain; `what` names it in an error (the rule's text, say). */
  newRule: (family: number, o: { table: string; chain: string; exprs: readonly Expr[]; what: string }): NftMessage => ({
    type: MSG.NEWRULE,
    flags: NLM_F_CREATE | NLM_F_APPEND,
    family,
    attrs: [
      str(NFTA_RULE_TABLE, o.table),
      str(NFTA_RULE_CHAIN, o.chain),
      attr(
        NFTA_RULE_EXPRESSIONS,
        o.exprs.map((e) => attr(NFTA_LIST_ELEM, [str(NFTA_EXPR_NAME, e.name), attr(NFTA_EXPR_DATA, e.attrs)])),
      ),
    ],
    what: o.what,
  }),
};

// ---------------------------------------------------------------- the wire

// Sequence numbers of this thread's requests: replies are matched by them, and anything else on the socket is skipped.
let nextSeq = (Date.now() / 1000) >>> 0;
const takeSeq = () => {
  nextSeq = (nextSeq + 1) >>> 0 || 1;
  return nextSeq;
};

/** The bytes a batch of `messages` takes on the wire (BATCH_BEGIN and BATCH_END included): it must fit the socket's send buffer. */
export function batchLength(messages: readonly NftMessage[]): number {
  return 40 + messages.reduce((sum, m) => sum + 20 + m.attrs.reduce((s, a) => s + align4(attrSize(a)), 0), 0);
}

/** nlmsghdr (16) + nfgenmsg (4) + attributes. */
function encode(type: number, flags: number, seq: number, family: number, resId: number, attrs: readonly Attr[]): Uint8Array {
  const len = 20 + attrs.reduce((s, a) => s + align4(attrSize(a)), 0);
  const bytes = new Uint8Array(len);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, len, true);
  view.setUint16(4, type, true);
  view.setUint16(6, flags, true);
  view.setUint32(8, seq, true);
  bytes[16] = family;
  bytes[17] = 0; // NFNETLINK_V0
  view.setUint16(18, resId, false);
  writeAttrs(view, bytes, 20, attrs);
  return bytes;
}

const concat = (parts: readonly Uint8Array[]) => {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
};

const SOL_SOCKET = 1;
const SO_SNDBUF = 7;
const SO_SNDBUFFORCE = 32;
/** The default send buffer (net.core.wmem_default, 208 KiB on most machines) with room to spare. */
const DEFAULT_SEND_BUFFER = 160 * 1024;

/**
 * A batch is one datagram, and netlink refuses a datagram larger than the
 * socket's send buffer (EMSGSIZE): a policy of 256 rules with presets and
 * port lists takes up to 2 MiB. Grows the buffer to fit, past
 * net.core.wmem_max where the caller may (FORCE: CAP_NET_ADMIN over the
 * host), else up to it (the kernel's default wmem_max of 208 KiB allows
 * batches of ~410 KiB; the test machine's 4 MiB, all of them).
 */
function fitSendBuffer(fd: number, length: number): void {
  if (length <= DEFAULT_SEND_BUFFER) return;
  const size = new Uint8Array(4);
  new DataView(size.buffer).setInt32(0, length + 64 * 1024, true);
  if (libc.symbols.setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, ptr(size), 4) !== 0) libc.symbols.setsockopt(fd, SOL_SOCKET, SO_SNDBUF, ptr(size), 4);
}

function send(fd: number, bytes: Uint8Array, what: string): void {
  fitSendBuffer(fd, bytes.length);
  const n = Number(libc.symbols.sendto(fd, ptr(bytes), bytes.length, 0, null, 0));
  if (n < 0) throw new SysError("sendto", errno(), `nftables ${what}`);
  if (n !== bytes.length) throw new SysError("sendto", ERRNO.EIO, `nftables ${what}: ${n} of ${bytes.length} bytes sent`);
}

// One receive buffer per thread: a dump's messages come in skbs of up to 32 KiB, more would be cut (MSG_TRUNC).
const receiveBuffer = new Uint8Array(256 * 1024);

/**
 * The next datagram on the socket, waiting for it at most `timeoutMs`
 * (replies to a request are queued while the kernel handles it, so they
 * are there at once; the wait only guards against a kernel that never
 * answers). Null on the timeout.
 */
function receive(fd: number, timeoutMs: number, what: string): Uint8Array | null {
  for (;;) {
    const n = Number(libc.symbols.recvfrom(fd, ptr(receiveBuffer), receiveBuffer.length, MSG_DONTWAIT, null, null));
    if (n >= 0) return receiveBuffer.subarray(0, n);
    const e = errno();
    if (e === ERRNO.EINTR) continue;
    if (e !== ERRNO.EAGAIN) throw new SysError("recv", e, `nftables ${what}`);
    const pfd = new Uint8Array(8);
    const view = new DataView(pfd.buffer);
    view.setInt32(0, fd, true);
    view.setInt16(4, POLLIN, true);
    const ready = libc.symbols.poll(ptr(pfd), 1, timeoutMs);
    if (ready === 0) return null;
    if (ready < 0 && errno() !== ERRNO.EINTR) throw new SysError("poll", errno(), `nftables ${what}`);
  }
}

interface Reply {
  type: number;
  seq: number;
  /** NLMSG_ERROR's error (0: an ack); undefined for other messages. */
  error?: number;
  /** After the nfgenmsg header. */
  body: Uint8Array;
}

function* replies(datagram: Uint8Array): Generator<Reply> {
  const view = new DataView(datagram.buffer, datagram.byteOffset, datagram.byteLength);
  for (let off = 0; off + 16 <= datagram.length; ) {
    const len = view.getUint32(off, true);
    if (len < 16 || off + len > datagram.length) return;
    const type = view.getUint16(off + 4, true);
    const seq = view.getUint32(off + 8, true);
    if (type === NLMSG_ERROR) yield { type, seq, error: -view.getInt32(off + 16, true), body: new Uint8Array() };
    else yield { type, seq, body: datagram.subarray(off + 20, off + len) };
    off += align4(len);
  }
}

const REPLY_TIMEOUT_MS = 5000;

/**
 * Sends `messages` as one transaction (BATCH_BEGIN ... BATCH_END): all of
 * them take effect, or none. The first error the kernel reports is thrown
 * as a SysError naming that message (or the commit). Synchronous.
 *
 * The kernel reports every failing message whatever its flags; an ack is
 * asked of the first and the last only, not of each: a large policy's
 * batch has thousands of messages, and as many acks would overflow the
 * socket's receive buffer (ENOBUFS) before the first was read. The last
 * one's ack says the batch was answered in full; the first one's tells a
 * failed commit (an error on the first message, then its ack) from a
 * failed first message (its error alone).
 */
export function sendBatch(fd: number, messages: readonly NftMessage[]): void {
  if (messages.length === 0) return;
  const begin = takeSeq();
  const bySeq = new Map<number, NftMessage>();
  const parts = [encode(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, begin, 0, NFNL_SUBSYS_NFTABLES, [])];
  messages.forEach((m, i) => {
    const seq = takeSeq();
    bySeq.set(seq, m);
    const ack = i === 0 || i === messages.length - 1 ? NLM_F_ACK : 0;
    parts.push(encode((NFNL_SUBSYS_NFTABLES << 8) | m.type, NLM_F_REQUEST | ack | m.flags, seq, m.family, 0, m.attrs));
  });
  parts.push(encode(NFNL_MSG_BATCH_END, NLM_F_REQUEST, takeSeq(), 0, NFNL_SUBSYS_NFTABLES, []));
  const what = `batch of ${messages.length} (${messages[0]!.what}, ...)`;
  capErrorReplies(fd);
  send(fd, concat(parts), what);
  // Every answer is queued before sendto returns; read them all, so none is left for the next call.
  const first = begin + 1;
  const last = begin + messages.length;
  const errors = new Map<number, number>();
  const acked = new Set<number>();
  for (;;) {
    const waiting = !acked.has(last) && errors.size === 0;
    const datagram = receive(fd, waiting ? REPLY_TIMEOUT_MS : 0, what);
    if (!datagram) break;
    for (const r of replies(datagram)) {
      if (r.error === undefined || !bySeq.has(r.seq)) continue;
      if (r.error === 0) acked.add(r.seq);
      else if (!errors.has(r.seq)) errors.set(r.seq, r.error);
    }
  }
  if (errors.size === 0) {
    if (acked.has(last)) return;
    throw new SysError("recv", ERRNO.ETIMEDOUT, `nftables ${what}: no answer`);
  }
  const [seq, err] = [...errors].sort((a, b) => a[0] - b[0])[0]!;
  throw new SysError("nftables", err, seq === first && acked.has(first) ? `commit of ${what}` : bySeq.get(seq)!.what);
}

const SOL_NETLINK = 270;
const NETLINK_CAP_ACK = 10;

/** An error reply carries the failed message's header only, not the whole message (a rule can be KiBs). */
function capErrorReplies(fd: number): void {
  const one = new Uint8Array([1, 0, 0, 0]);
  libc.symbols.setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, ptr(one), 4);
}

/**
 * One request (not batched) to nfnetlink subsystem `subsystem` and its
 * answers: the messages before the ack or NLMSG_DONE; an error answer is
 * thrown as a SysError naming `what`. src/sys/nflog.ts configures its
 * socket through it as well.
 */
export function nfnetlinkRequest(
  fd: number,
  o: { subsystem: number; type: number; flags: number; family: number; resId?: number; attrs: readonly Attr[]; what: string },
): Uint8Array[] {
  const seq = takeSeq();
  send(fd, encode((o.subsystem << 8) | o.type, NLM_F_REQUEST | o.flags, seq, o.family, o.resId ?? 0, o.attrs), o.what);
  const bodies: Uint8Array[] = [];
  for (;;) {
    const datagram = receive(fd, REPLY_TIMEOUT_MS, o.what);
    if (!datagram) throw new SysError("recv", ERRNO.ETIMEDOUT, `nfnetlink ${o.what}`);
    for (const r of replies(datagram)) {
      if (r.seq !== seq) continue;
      if (r.type === NLMSG_DONE) return bodies;
      if (r.error !== undefined) {
        if (r.error !== 0) throw new SysError("nfnetlink", r.error, o.what);
        return bodies;
      }
      bodies.push(r.body.slice());
    }
  }
}

const request = (fd: number, type: number, flags: number, family: number, attrs: readonly Attr[], what: string) =>
  nfnetlinkRequest(fd, { subsystem: NFNL_SUBSYS_NFTABLES, type, flags, family, attrs, what });

/** Whether table `table` of `family` exists (GETTABLE). */
export function tableExists(fd: number, family: number, table: string): boolean {
  try {
    request(fd, MSG.GETTABLE, NLM_F_ACK, family, [str(NFTA_TABLE_NAME, table)], `get table ${table}`);
    return true;
  } catch (e) {
    if (e instanceof SysError && e.errno === ERRNO.ENOENT) return false;
    throw e;
  }
}

export interface DumpedElement {
  key: Uint8Array;
  /** Milliseconds left before the element expires; undefined for an element without a timeout. */
  expiresInMs?: number;
}

/** A set's elements (GETSETELEM dump), each with the time it has left. */
export function dumpSetElements(fd: number, family: number, table: string, set: string): DumpedElement[] {
  const bodies = request(
    fd,
    MSG.GETSETELEM,
    NLM_F_DUMP,
    family,
    [str(NFTA_SET_ELEM_LIST_TABLE, table), str(NFTA_SET_ELEM_LIST_SET, set)],
    `list set ${table} ${set}`,
  );
  const out: DumpedElement[] = [];
  for (const body of bodies) {
    const list = parseAttrs(body, 0, body.length).get(NFTA_SET_ELEM_LIST_ELEMENTS);
    if (!list) continue;
    for (const element of parseList(list)) {
      const a = parseAttrs(element, 0, element.length);
      const keyNest = a.get(NFTA_SET_ELEM_KEY);
      const key = keyNest ? parseAttrs(keyNest, 0, keyNest.length).get(NFTA_DATA_VALUE) : undefined;
      if (!key) continue;
      const expiration = a.get(NFTA_SET_ELEM_EXPIRATION);
      out.push({
        key: key.slice(),
        ...(expiration?.length === 8 ? { expiresInMs: Number(new DataView(expiration.buffer, expiration.byteOffset).getBigUint64(0, false)) } : {}),
      });
    }
  }
  return out;
}
